"""Proof-of-learning layer: tasks, tensor commitments, training programs, training, verification.

Public API (everything else is internal):

* tasks and artifacts: :class:`TrainingTask`, :class:`Dataset`, ``weights_to_bytes`` /
  ``weights_from_bytes``, ``digits_dataset``, ``synthetic_dataset``
* commitments: ``keccak256``, ``merkle_root``, ``merkle_proof``, ``verify_proof``,
  ``merkle_range_proof``, ``verify_range_proof``, ``tensor_root``, ``tensor_range_proof``,
  ``verify_tensor_range``, ``checkpoint_root``, ``dataset_root``, ``proof_root``, ``LEAF_BYTES``
* programs (``program``, ``capture``, ``program_training``): ``execution_context``, ``trace_root``
* training: ``train``, ``batch_indices``, :class:`Checkpoint`, :class:`ProofDocument`, ``build_proof``
* verification: ``profile_threshold``, ``select_segments``, ``replay_segment``, ``verify``, :class:`Verdict`
* demo tasks: ``digits_task``, ``tiny_task``
* your own data: ``load_dataset`` -> :class:`LoadedData` (training rows, held-out rows, description)
"""

from __future__ import annotations

from .artifacts import (
    Dataset,
    digits_dataset,
    synthetic_dataset,
    weights_from_bytes,
    weights_to_bytes,
)
from .commit import (
    LEAF_BYTES,
    RowProof,
    TensorRangeProof,
    checkpoint_root,
    dataset_root,
    dataset_row_proof,
    keccak256,
    merkle_proof,
    merkle_range_proof,
    merkle_root,
    proof_root,
    tensor_bytes,
    tensor_range_proof,
    tensor_root,
    verify_proof,
    verify_range_proof,
    verify_row_proof,
    verify_tensor_range,
)
from .data import LoadedData, load_dataset
from .demo import DemoTask, digits_task, local_cid, tiny_task
from .errors import (
    ArtifactError,
    CommitmentError,
    DataError,
    GraphError,
    MLError,
    ProofError,
    SpecError,
    TaskError,
    TrainingError,
)
from .program import StepOutput, execution_context, trace_root, trace_roots
from .task import TrainingTask
from .train import (
    BatchSampler,
    Checkpoint,
    ProofDocument,
    TrainingResult,
    batch_indices,
    build_proof,
    merge_results,
    replay,
    segment_state_roots,
    step_trace,
    train,
    update_norm,
)
from .verify import (
    DEFAULT_POLICY,
    Threshold,
    Verdict,
    VerificationPolicy,
    profile_threshold,
    replay_segment,
    select_segments,
    state_distance,
    verify,
)

__all__ = [
    "LEAF_BYTES", "DEFAULT_POLICY",
    "ArtifactError", "CommitmentError", "DataError", "GraphError", "MLError", "ProofError", "SpecError",
    "TaskError", "TrainingError",
    "BatchSampler", "Checkpoint", "Dataset", "DemoTask", "LoadedData",
    "ProofDocument", "RowProof", "StepOutput", "TensorRangeProof", "Threshold",
    "TrainingResult", "TrainingTask", "Verdict", "VerificationPolicy",
    "batch_indices", "build_proof", "checkpoint_root", "dataset_root",
    "dataset_row_proof", "digits_dataset", "digits_task", "execution_context",
    "keccak256", "load_dataset", "local_cid", "merge_results", "merkle_proof", "merkle_range_proof",
    "merkle_root", "profile_threshold", "proof_root", "replay", "replay_segment",
    "segment_state_roots", "select_segments", "state_distance", "step_trace", "synthetic_dataset",
    "tensor_bytes", "tensor_range_proof", "tensor_root", "tiny_task", "trace_root", "trace_roots",
    "train", "update_norm", "verify", "verify_proof", "verify_range_proof", "verify_row_proof",
    "verify_tensor_range", "weights_from_bytes", "weights_to_bytes",
]
