"""What a training run reads, with the trainer's defaults: `TrainingConfig`, one frozen record.

gantut_trainer.py takes its flags' defaults from it and resolves its flags into one in `main`
(a loss kind's Adam settings, this machine's kernels); nothing writes the flags after that.
`DCGAN.train` turns whatever config it is given (the trainer's, or Part 5's own script's FLAGS
with the post's nine flags) into one with `TrainingConfig.of`, so a field the caller lacks has
the value the trainer would give it.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    # The post's nine flags, with its defaults (Part 5).
    epoch: int = 20
    learning_rate: float = 0.0002
    beta1: float = 0.5
    train_size: float = float("inf")
    batch_size: int = 64
    image_size: int = 64
    dataset: str = "lfw-aligned-64"
    checkpoint_dir: str = "checkpoint"
    sample_dir: str = "samples"
    # Ours.
    beta2: float = 0.999
    holdout: float = 0.02
    eval_samples: int = 1000
    eval_every_epoch: bool = True
    augment: bool = False
    progress_gif: bool = True
    seed: int = None
    logs_dir: str = "logs"
    sample_freq: int = 100
    ckpt_freq: int = 500
    summary_freq: int = 10
    max_to_keep: int = 5
    # How the trainer runs the model here: bfloat16 on oneDNN and batch norm's fused kernel
    # (--bf16, --fused_bn; main fills in this machine's choice where they were left unset).
    bf16: bool = False
    fused_bn: bool = False

    @classmethod
    def of(cls, values):
        """The config holding `values`' attributes of these names (absl FLAGS, a namespace, a
        TrainingConfig) and the defaults for the others."""
        return cls(**{field.name: getattr(values, field.name)
                      for field in dataclasses.fields(cls) if hasattr(values, field.name)})


DEFAULTS = TrainingConfig()
