"""Training: optimizer, train/eval steps, state, trainer, checkpoints, sharding, multi-host, fine-tuning masks.

Names load on first use (PEP 562): importing the package imports none of its modules.
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "Audio": "summaries", "Checkpointer": "checkpoint", "DistributedConfig": "distributed", "FitResult": "trainer",
    "Image": "summaries", "MeshConfig": "sharding", "OptimizerConfig": "optim", "Scalar": "summaries",
    "Text": "summaries", "TrainState": "state", "TrainerConfig": "trainer", "accumulated_gradients": "step",
    "barrier": "distributed", "batch_sharding": "sharding", "check_bytes": "checkpoint",
    "check_params_fit": "checkpoint", "check_state_fits": "checkpoint", "count_parameters": "finetune",
    "decay_mask": "optim", "diverged_marker": "trainer", "evaluate_split": "evaluation", "make_eval_counts": "step", "drop_logged_after": "trainer", "figure_pixels": "summaries",
    "fit": "trainer", "host_copy": "distributed", "init_params": "init", "initialize": "distributed",
    "is_primary": "distributed", "leaf_spec": "sharding", "learning_rate_schedule": "optim", "make_eval_step": "step",
    "make_mesh": "sharding", "make_optimizer": "optim", "make_sharded_steps": "sharding", "make_train_step": "step",
    "masked_optimizer": "finetune", "merge_pretrained": "finetune", "schedule_count": "optim",
    "shard_batch": "sharding", "split_micro_batches": "step", "state_shardings": "sharding",
    "trainable_mask": "finetune", "unreadable_reason": "checkpoint_bytes", "use_compilation_cache": "trainer",
    "write_summaries": "summaries",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
