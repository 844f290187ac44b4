# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title structs
@notice Calldata and report types shared by Arbitration.vy and its checkers.
"""

# nodes one program / trace opening proves (an output link opens the state in runs of these)
MAX_OPEN_NODES: constant(uint256) = 65
MAX_NODE_SIBLINGS: constant(uint256) = 128
# tensor leaves one opening proves (a row of 4096 features, a strided column within 16 leaves)
MAX_OPEN_LEAVES: constant(uint256) = 16
MAX_TENSOR_SIBLINGS: constant(uint256) = 256
LEAF_BYTES: constant(uint256) = 2048
MAX_PROOF_SIBLINGS: constant(uint256) = 64
# widest dataset row (4096 float32 features)
MAX_ROW_BYTES: constant(uint256) = 16384
# a group task (docs/group-tasks.md §4.3): its commitments' weights_root is this mark and its
# graph_root keccak256(abi.encode(participants)), the spec hashes of its participants in rank order
GROUP_TASK: constant(bytes32) = keccak256("dtm group task")
MAX_PARTICIPANTS: constant(uint256) = 64


struct Commitments:
    # TrainingTask.commitments(); keccak256(abi.encode(...)) is the task's spec_hash
    spec_bytes_hash: bytes32
    graph_root: bytes32
    dataset_root: bytes32
    dataset_rows: uint256
    weights_root: bytes32
    seed: uint256
    batch_size: uint256
    steps: uint256
    checkpoint_interval: uint256

struct Context:
    # what the checkers need of a live dispute (Arbitration.context)
    task_id: uint256
    spec_hash: bytes32
    step: uint256
    state_before: bytes32
    state_after: bytes32
    trace_root: bytes32
    demand_node: uint256
    demand_start: uint256
    demand_count: uint256
    demand_numel: uint256
    demand_itemsize: uint256
    n_nodes: uint256
    mail_root: bytes32          # a group participant's dispute: its group's mail; empty otherwise

struct TraceOpening:
    # output tensor roots of the same ids, proven against the trace root
    roots: DynArray[bytes32, MAX_OPEN_NODES]
    siblings: DynArray[bytes32, MAX_NODE_SIBLINGS]

struct TensorOpening:
    # 2 KiB leaves at strictly increasing positions, proven against a tensor root
    leaf_indices: DynArray[uint256, MAX_OPEN_LEAVES]
    leaves: DynArray[Bytes[LEAF_BYTES], MAX_OPEN_LEAVES]
    siblings: DynArray[bytes32, MAX_TENSOR_SIBLINGS]

struct DataRow:
    # one dataset row: x as float32 LE bytes, y (a non-negative int64), Merkle siblings
    x_row: Bytes[MAX_ROW_BYTES]
    label: uint256
    siblings: DynArray[bytes32, MAX_PROOF_SIBLINGS]


# ── dissection inside a reduction (docs/arbitration.md §4.4, docs/judge.md §3.7) ──

# terms the judge re-computes at once: the chunk of a dissected reduction
CHUNK: constant(uint256) = 64
# partials one post commits (chunks of the range, or groups of them)
MAX_PARTIALS: constant(uint256) = 256
# longest dissected reduction (n·u < 1/4; two posts of 256 partials reach one chunk)
MAX_LONG_REDUCTION: constant(uint256) = 4_194_304
# bounds every honest partial meets: exponents of products of finite float32 (Judge.vy
# LONG_TOP_FLOOR .. 104 + 104) and absolute sums (n · (2^208 + 1) <= 2^230 for n <= 2^22)
PARTIAL_TOP_FLOOR: constant(int256) = -40
PARTIAL_TOP_CEIL: constant(int256) = 208
MAX_PARTIAL_ABS: constant(uint256) = 2**231

# a dissected softmax-family row's kind in the game: ROW_BASE + its op code; its partials are
# validated by its checker (contracts/ProgramRowJudge.vy), not by the game's ranges above
ROW_BASE: constant(uint256) = 256

struct Partial:
    # a run of terms at the reduction's scale 2^G: their sum truncated toward zero, their
    # absolute sum (+1 per truncated term), their largest exponent; leaf keccak256(abi.encode(...))
    x: int256
    abs_sum: uint256
    top: int256

struct ReductionContext:
    # what the ProgramReductionChecker needs of a live dissection (Arbitration.reduction_context)
    spec_hash: bytes32
    trace_root: bytes32
    node: uint256
    index: uint256
    op: uint256
    n: uint256                  # terms of the reduction
    claimed: uint256            # the solver's float32 element (bits)
    first: uint256              # first chunk of the posted range
    chunks: uint256             # chunks in the posted range
    points: uint256             # partials of the last post
    partials_root: bytes32      # Merkle root of their leaves
    whole: bool                 # the last post covers the whole reduction: the fold is open
    total: Partial              # the totals of the whole reduction's post (the fold's inputs)


# ── training programs (docs/arbitration.md §11, docs/programs.md §4) ──

# inputs of a program node, and the rank / attrs of its descriptor (offchain/ml/program.py)
MAX_PROGRAM_INPUTS: constant(uint256) = 8
MAX_PROGRAM_RANK: constant(uint256) = 8
MAX_PROGRAM_ATTRS: constant(uint256) = 32
# state tensors of a program (parameters and optimizer buffers): its outputs
MAX_STATE: constant(uint256) = 1024

struct ProgramCommit:
    # the program task's graph root is keccak256(abi.encode(program_root, hyper_root)) with
    # program_root = keccak256(abi.encode(nodes_root, outputs_hash)), or, for a group
    # participant's step, keccak256(abi.encode(nodes_root, outputs_hash, links))
    # (TrainingTask.committed_graph_root, Program.root)
    nodes_root: bytes32         # sized Merkle root of the descriptors
    outputs_hash: bytes32       # keccak256(abi.encode(uint256[] outputs)): the next state's nodes
    links: bytes32              # keccak256(abi.encode(MailCommit)) of a participant; empty otherwise
    hyper_root: bytes32         # the (steps, H) hyper table

# messages a group participant sends or receives in one step
MAX_MAIL: constant(uint256) = 256

struct MailCommit:
    # where a group participant's messages sit in its group's mail (docs/group-tasks.md §4.1): the
    # mail root, committed with the group's proof, is the Merkle root of every message's tensor
    # root, step by step, `per_step` a step
    sends: DynArray[uint256, MAX_MAIL]  # the nodes it sends, in order: positions offset, offset + 1, …
    inbox: DynArray[uint256, MAX_MAIL]  # the position of the message its recv leaf i reads
    offset: uint256
    per_step: uint256

struct ProgramDescriptor:
    # keccak256(abi.encode(id, op, dtype, inputs, shape, attrs)) is its leaf
    id: uint256
    op: uint256
    dtype: uint256
    inputs: DynArray[uint256, MAX_PROGRAM_INPUTS]
    shape: DynArray[uint256, MAX_PROGRAM_RANK]
    attrs: DynArray[uint256, MAX_PROGRAM_ATTRS]

struct ProgramOpening:
    # descriptors at strictly increasing ids (a node and its distinct inputs), proven against nodes_root
    n_nodes: uint256
    nodes: DynArray[ProgramDescriptor, MAX_PROGRAM_INPUTS + 1]
    siblings: DynArray[bytes32, MAX_NODE_SIBLINGS]
