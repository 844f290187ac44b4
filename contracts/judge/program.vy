# pragma version 0.4.3
"""
@title program
@notice The descriptor fields of training-program nodes (docs/programs.md §4) as the program
        judge reads them, and C-order shape arithmetic shared by ProgramIndex and
        ProgramJudge (docs/judge-programs.md §1).
"""

# offchain/ml/program.py limits; a read list holds at most one judge-sized reduction
MAX_RANK: constant(uint256) = 8
MAX_ATTRS: constant(uint256) = 32
MAX_INPUTS: constant(uint256) = 8
MAX_READ: constant(uint256) = 64
MAX_LISTS: constant(uint256) = 5
# loop bound over one dimension of a descriptor (openings.vy MAX_DIM)
MAX_DIM: constant(uint256) = 2**32
# signed attrs (ignore_index, padding_idx) are stored offset by 2^63
SIGNED: constant(int256) = 2**63

# dtype codes
F32: constant(uint256) = 0
I64: constant(uint256) = 1
BOOL: constant(uint256) = 2

# opcodes (offchain/ml/ops.py)
OP_ADD: constant(uint256) = 4
OP_RELU: constant(uint256) = 6
OP_THRESHOLD_BACKWARD: constant(uint256) = 7
OP_VIEW: constant(uint256) = 15
OP_NEG: constant(uint256) = 16
OP_MAXIMUM: constant(uint256) = 31
OP_MINIMUM: constant(uint256) = 32
OP_WHERE: constant(uint256) = 33
OP_EQ: constant(uint256) = 34
OP_NE: constant(uint256) = 35
OP_LT: constant(uint256) = 36
OP_LE: constant(uint256) = 37
OP_GT: constant(uint256) = 38
OP_GE: constant(uint256) = 39
OP_CAT: constant(uint256) = 40
OP_CAST: constant(uint256) = 41
OP_SILU: constant(uint256) = 42
OP_LOGICAL_NOT: constant(uint256) = 43
OP_TANH_BACKWARD: constant(uint256) = 44
OP_SIGMOID_BACKWARD: constant(uint256) = 45
OP_SILU_BACKWARD: constant(uint256) = 46
OP_LOGICAL_AND: constant(uint256) = 47
OP_LOGICAL_OR: constant(uint256) = 48
OP_SUM: constant(uint256) = 50
OP_MEAN: constant(uint256) = 51
OP_AMAX: constant(uint256) = 52
OP_MM: constant(uint256) = 53
OP_BMM: constant(uint256) = 54
OP_ADDMM: constant(uint256) = 55
OP_CONV2D: constant(uint256) = 56
OP_CONV2D_GRAD_INPUT: constant(uint256) = 57
OP_CONV2D_GRAD_WEIGHT: constant(uint256) = 58
OP_CONV2D_GRAD_BIAS: constant(uint256) = 59
OP_MAX_POOL2D: constant(uint256) = 60
OP_MAX_POOL2D_INDICES: constant(uint256) = 61
OP_MAX_POOL2D_GRAD: constant(uint256) = 62
OP_LAYER_NORM: constant(uint256) = 63
OP_LAYER_NORM_MEAN: constant(uint256) = 64
OP_LAYER_NORM_RSTD: constant(uint256) = 65
OP_LAYER_NORM_GRAD_INPUT: constant(uint256) = 66
OP_LAYER_NORM_GRAD_WEIGHT: constant(uint256) = 67
OP_LAYER_NORM_GRAD_BIAS: constant(uint256) = 68
OP_GROUP_NORM: constant(uint256) = 69
OP_GROUP_NORM_MEAN: constant(uint256) = 70
OP_GROUP_NORM_RSTD: constant(uint256) = 71
OP_SOFTMAX: constant(uint256) = 72
OP_SAFE_SOFTMAX: constant(uint256) = 73
OP_LOG_SOFTMAX: constant(uint256) = 74
OP_SOFTMAX_GRAD: constant(uint256) = 75
OP_LOG_SOFTMAX_GRAD: constant(uint256) = 76
OP_NLL_LOSS: constant(uint256) = 77
OP_NLL_LOSS_WEIGHT: constant(uint256) = 78
OP_NLL_LOSS_GRAD: constant(uint256) = 79
OP_EMBEDDING: constant(uint256) = 80
OP_EMBEDDING_GRAD: constant(uint256) = 81
OP_BERNOULLI: constant(uint256) = 82


struct Node:
    op: uint256
    dtype: uint256
    shape: DynArray[uint256, MAX_RANK]
    attrs: DynArray[uint256, MAX_ATTRS]


struct Input:
    dtype: uint256
    shape: DynArray[uint256, MAX_RANK]


struct Read:
    pos: uint256
    idx: DynArray[uint256, MAX_READ]


@internal
@pure
def _numel(shape: DynArray[uint256, MAX_RANK]) -> uint256:
    n: uint256 = 1
    for size: uint256 in shape:
        n *= size
    return n


@internal
@pure
def _unravel(index: uint256, shape: DynArray[uint256, MAX_RANK]) -> DynArray[uint256, MAX_RANK]:
    """
    @notice The C-order multi-index of flat `index` in `shape`.
    """
    multi: DynArray[uint256, MAX_RANK] = shape
    rest: uint256 = index
    rank: uint256 = len(shape)
    for k: uint256 in range(rank, bound=MAX_RANK):
        d: uint256 = rank - 1 - k
        multi[d] = rest % shape[d]
        rest //= shape[d]
    return multi


@internal
@pure
def _ravel(multi: DynArray[uint256, MAX_RANK], shape: DynArray[uint256, MAX_RANK]) -> uint256:
    flat: uint256 = 0
    for d: uint256 in range(len(shape), bound=MAX_RANK):
        flat = flat * shape[d] + multi[d]
    return flat


@internal
@pure
def _along(shape: DynArray[uint256, MAX_RANK], index: uint256, dim: uint256) -> (uint256, uint256, uint256):
    """
    @notice The row through flat `index` along `dim`: (first flat index, stride, position of
            `index` in the row).
    """
    stride: uint256 = 1
    for d: uint256 in range(dim + 1, len(shape), bound=MAX_RANK):
        stride *= shape[d]
    at: uint256 = index // stride % shape[dim]
    return index - at * stride, stride, at
