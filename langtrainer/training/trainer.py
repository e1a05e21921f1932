"""`LangTrainer`: a `Trainer` whose loss knows each example's language.

- per-language class weights (eq. 2) looked up per example by a gather from a
  [language, label] table computed once from the whole training set;
- the masked-input entropy term (Annex A.3, eq. 3), during training only, so
  it never enters `eval_loss` and best-model selection;
- separate learning rates for the encoder and the classifier head, both
  decaying with the same schedule (linear to 0 by default);
- evaluators (`evaluators=[...]`, objects with `compute_eval_metrics(model,
  tokenizer)`, as sentence-transformers' `evaluator=`; callbacks with that
  method are accepted too) run inside the evaluation loop, so their numbers
  are logged with the other metrics and can select the best checkpoint;
- the language adversary (the paper's footnote 2; training/adversary.py): a
  language-identification head on the encoder's first token, trained by
  gradient reversal or against the encoder's prediction entropy; logged as
  `language_adversary_loss` / `language_adversary_accuracy` (train, eval_,
  test_), never part of `eval_loss`, and dropped from the saved classifier;
- `eval_loss` is the loss training minimises without the entropy term (class
  weighted when weights are on); `eval_ce` beside it is the plain, unweighted
  cross-entropy, so runs with and without weights compare on one scale;
- `inference_predictions()`: inside it, evaluation forwards go through
  `models.inference` (ONNX Runtime where it is checked exact, else the eager
  model): for predictions on a finished model (the test split). Evaluations
  during training stay eager: each would export new weights, and best-model
  selection keeps the eager model's numbers.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, default_data_collator
from transformers.trainer_utils import has_length

from langtrainer.errors import UserError
from langtrainer.training import adversary as adv
from langtrainer.training.args import LangTrainingArguments
from langtrainer.training.batching import EpochWeightedSampler, LanguageCollator
from langtrainer.training.weighting import class_weight_table

logger = logging.getLogger(__name__)

def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids a single text is wrapped in, e.g. ([CLS], [SEP])."""
    if tokenizer.mask_token_id is None:
        raise UserError("the tokenizer has no mask token: the masked-input entropy term needs one")
    ids = tokenizer(tokenizer.mask_token, add_special_tokens=True)["input_ids"]
    at = ids.index(tokenizer.mask_token_id)
    return list(ids[:at]), list(ids[at + 1 :])


def head_parameter_names(model: torch.nn.Module) -> set[str]:
    """Parameters outside the pretrained body (the classifier head)."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if body is None or body is model:
        raise UserError("cannot tell the classifier head from the encoder: the model has no base_model_prefix")
    return {name for name, _ in model.named_parameters() if not name.startswith(prefix + ".")}


class LangTrainer(Trainer):
    """A `Trainer` for multilingual classification with language-aware losses.

    Use it like a `Trainer` with `LangTrainingArguments`. Datasets carry a
    language column (ISO code strings; `args.language_column`, default
    `language`); it reaches `compute_loss` as ids and is removed before
    `model(**inputs)`. `languages` fixes the id order (default: sorted
    languages of the training set). Without class weights or the
    per-language sampler the column is optional.
    """

    # compute_loss returns a per-batch mean; training_step divides by the
    # accumulation steps, so GA=8 x 2 equals 1 x 16.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, languages: Sequence[str] | None = None, evaluators: Sequence[Any] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        for evaluator in evaluators or []:
            if not callable(getattr(evaluator, "compute_eval_metrics", None)):
                raise TypeError(f"evaluator {evaluator!r} has no compute_eval_metrics(model, tokenizer)")
        self.evaluators = list(evaluators or [])
        if not isinstance(self.args, LangTrainingArguments):
            raise TypeError("LangTrainer needs LangTrainingArguments")
        train = self.train_dataset
        column = self.language_column = self.args.language_column
        if languages is None:
            if train is not None and column in train.column_names:
                languages = sorted(set(train[column]))
            elif (self.args.class_weights == "none" and self.args.language_sampler == "none"
                  and self.args.language_adversary == "none"):
                languages = []
            else:
                present = ", ".join(getattr(train, "column_names", None) or [])
                raise UserError(
                    f"the training dataset has no '{column}' column (columns: {present}); "
                    "set LangTrainingArguments(language_column=...)"
                )
        self.languages = list(languages)
        # Replace the Trainer's default collator; a user's own collator is kept
        # (it must then turn the language column into ids itself).
        if self.data_collator is None or self.data_collator is default_data_collator or isinstance(
            self.data_collator, DataCollatorWithPadding
        ):
            self.data_collator = LanguageCollator(self.processing_class, self.languages, column)
        self.num_labels = int(self.model.config.num_labels)
        self.class_weights = self._make_class_weights()
        self._side_metrics: dict[str, list[float]] = defaultdict(list)
        self._mask_step, self._mask_call = -1, 0
        self._step_learning_rates: dict[str, float] = {}
        self._ce_sum: list[float] | None = None  # [sum of per-example CE, examples] during evaluation
        self.adversary_head: torch.nn.Module | None = None
        self._first_token: torch.Tensor | None = None
        self._adversary_sums = self._adversary_eval_sums = None
        self._inference_forward = None  # set inside inference_predictions()
        if self.args.language_adversary != "none":
            self._attach_adversary()

    # ------------------------------------------------------------ weights

    def _training_keys(self) -> tuple[np.ndarray, np.ndarray]:
        train = self.train_dataset
        index = {lang: i for i, lang in enumerate(self.languages)}
        lang_ids = np.array([index[lang] for lang in train[self.language_column]], dtype=np.int64)
        labels = np.asarray(train["labels" if "labels" in train.column_names else "label"], dtype=np.int64)
        return lang_ids, labels

    def _make_class_weights(self) -> torch.Tensor | None:
        """[n_languages, n_labels] table from the whole training set, once."""
        if self.args.class_weights == "none" or self.train_dataset is None:
            return None
        lang_ids, labels = self._training_keys()
        table = class_weight_table(
            labels,
            np.asarray(self.languages)[lang_ids],
            n_labels=self.num_labels,
            language_order=self.languages,
            scheme=self.args.weight_scheme,
            beta=self.args.effective_number_beta,
            per_language=self.args.class_weights == "per_language",
        )
        return torch.as_tensor(table, dtype=torch.float32)

    # ------------------------------------------------------------ adversary

    def _attach_adversary(self) -> None:
        """The language head, as a submodule of the classifier (so checkpoints and resume carry it).

        Its classes are `self.languages`; languages with no training row
        (possible when `languages` is given) are left out of the adversary's
        evaluation metrics: the head never saw them.
        """
        if len(self.languages) < 2:
            raise UserError("loss.language_adversary needs at least two languages in the training data, "
                            f"got {self.languages}")
        model = self.model
        prefix = getattr(model, "base_model_prefix", "")
        body = getattr(model, prefix, None) if prefix else None
        hidden_size = getattr(model.config, "hidden_size", None)
        if body is None or body is model or not hidden_size:
            raise UserError("loss.language_adversary needs an encoder with a base_model_prefix and a hidden_size")
        head = adv.make_head(int(hidden_size), len(self.languages), self.args.language_adversary_hidden,
                             self.args.seed)
        setattr(model, adv.MODULE_NAME, head.to(next(model.parameters()).device))
        self.adversary_head = head
        trained = set(self.train_dataset[self.language_column]) if self.train_dataset is not None else set()
        self._adversary_trained = torch.tensor([lang in trained for lang in self.languages])
        self._adversary_sums = [0.0, 0, 0, 0.0]  # head CE sum, correct, rows, neg-entropy sum (since last log)
        # The last layer's hidden state at the first token: what the probe reads.
        body.register_forward_hook(self._capture_first_token)

    def _capture_first_token(self, module, args, output) -> None:
        hidden = output[0] if isinstance(output, (tuple, list)) else output["last_hidden_state"]
        self._first_token = hidden[:, 0]

    def adversary_lambda(self) -> float:
        """lambda now: weight, or weight x the dann ramp at p = optimizer steps done / total."""
        progress = self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0
        return adv.adversary_lambda(self.args.language_adversary_weight, self.args.language_adversary_schedule,
                                    progress)

    def _adversary_piece(self, model, features: torch.Tensor | None, language: torch.Tensor | None):
        """Training: the loss piece to add (and its sums logged); evaluation: counts only (None)."""
        if features is None:
            raise UserError("the language adversary saw no encoder output (the model's forward skipped its body)")
        if language is None:
            raise UserError(f"loss.language_adversary needs the '{self.language_column}' column in every batch")
        language = language.to(features.device)
        if model.training:
            terms = adv.adversary_terms(self.adversary_head, features, language, self.args.language_adversary,
                                        self.adversary_lambda())
            sums = self._adversary_sums
            sums[0] += terms.head_ce_sum
            sums[1] += terms.correct
            sums[2] += terms.count
            if terms.neg_entropy is not None:
                sums[3] += terms.neg_entropy * terms.count
            return terms.loss
        if self._adversary_eval_sums is not None:
            keep = self._adversary_trained.to(language.device)[language]
            if bool(keep.any()):
                logits = self.adversary_head(features[keep].float())
                ce_sum, correct, count = adv.head_counts(logits, language[keep])
                sums = self._adversary_eval_sums
                sums[0] += ce_sum
                sums[1] += correct
                sums[2] += count
        return None

    def _adversary_train_logs(self) -> dict[str, float]:
        ce_sum, correct, rows, neg_entropy_sum = self._adversary_sums
        if not rows:
            return {}
        logs = {
            "language_adversary_loss": ce_sum / rows,
            "language_adversary_accuracy": correct / rows,
            "language_adversary_lambda": self.adversary_lambda(),
        }
        if self.args.language_adversary == "entropy":
            logs["language_adversary_entropy"] = -neg_entropy_sum / rows
        self._adversary_sums = [0.0, 0, 0, 0.0]
        return logs

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints keep the language head (resume needs it); the saved classifier does not."""
        model = self.model
        if _internal_call or self.adversary_head is None or adv.MODULE_NAME not in model._modules:
            return super().save_model(output_dir, _internal_call)
        head = model._modules.pop(adv.MODULE_NAME)
        try:
            return super().save_model(output_dir, _internal_call)
        finally:
            model._modules[adv.MODULE_NAME] = head

    # ------------------------------------------------------------ data

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self.language_column not in self._signature_columns:
            self._signature_columns.append(self.language_column)

    def _get_train_sampler(self, train_dataset=None):
        if self.args.language_sampler != "per_language_balanced":
            return super()._get_train_sampler(train_dataset)
        lang_ids, labels = self._training_keys()
        keys = lang_ids * self.num_labels + labels
        counts = np.bincount(keys)
        weights = 1.0 / counts[keys]
        return EpochWeightedSampler(torch.as_tensor(weights), num_samples=len(keys), seed=self.args.seed)

    def _get_eval_sampler(self, eval_dataset):
        """Dataset order, always: metrics pair predictions with the dataset's rows.

        (The stock Trainer shuffles evaluation into length groups under
        `train_sampling_strategy=group_by_length`; sort the dataset instead.)
        """
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # accelerate shards it in order across processes

    # ------------------------------------------------------------ loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        language = inputs.pop(self.language_column, None)
        self._first_token = None
        outputs = None if model.training else self._inference_outputs(inputs)
        if outputs is None:
            outputs = model(**inputs)
        features, self._first_token = self._first_token, None
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        loss = self.weighted_loss(logits, labels, language)
        if self.adversary_head is not None:
            piece = self._adversary_piece(model, features, language)
            if piece is not None:  # training only: eval_loss (best-model selection) stays the task's
                loss = loss + piece
        if self._ce_sum is not None and not model.training:
            ce = F.cross_entropy(logits.detach().float(), labels, reduction="sum")
            self._ce_sum[0] += float(ce)
            self._ce_sum[1] += int(labels.numel())
        if model.training and self.args.mask_entropy > 0:
            neg_entropy = self.masked_input_neg_entropy(model, inputs)
            loss = loss + self.args.mask_entropy * neg_entropy
            self._side_metrics["mask_neg_entropy"].append(float(neg_entropy.detach()))
        return (loss, outputs) if return_outputs else loss

    # ------------------------------------------------------------ inference-only predictions

    INFERENCE_INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})

    @contextlib.contextmanager
    def inference_predictions(self):
        """Within: `predict` / `evaluate` run their forwards through `models.inference` when it has an
        exact exported session for the model (its logits within `inference.TOLERANCE` of the eager
        model's); yields that route ("onnxruntime" or "eager"). Eager, as outside, on more than one
        process, with the language adversary (its metrics read the encoder's hidden states), or with
        LANGTRAINER_FAST_FORWARD=0."""
        from langtrainer.models.inference import inference_forward

        model = self.accelerator.unwrap_model(self.model)
        forward = None
        if self.args.world_size <= 1 and self.adversary_head is None:
            was_training = model.training
            model.eval()
            try:
                candidate = inference_forward(model, "logits")
            finally:
                model.train(was_training)
            forward = candidate if candidate.route != "eager" else None
        self._inference_forward = forward
        try:
            yield forward.route if forward is not None else "eager"
        finally:
            self._inference_forward = None

    def _inference_outputs(self, inputs: dict[str, torch.Tensor]):
        """The batch's logits from the inference session (as a model output), or None: run the model."""
        forward = self._inference_forward
        if forward is None or not set(inputs) <= self.INFERENCE_INPUTS or "input_ids" not in inputs:
            return None
        from transformers.modeling_outputs import SequenceClassifierOutput

        ids = inputs["input_ids"]
        attention = inputs.get("attention_mask")
        attention = torch.ones_like(ids) if attention is None else attention
        types = inputs.get("token_type_ids")
        (logits,) = forward(ids.cpu().numpy(), attention.cpu().numpy(), None if types is None else types.cpu().numpy())
        return SequenceClassifierOutput(logits=torch.from_numpy(logits).to(ids.device))

    def weighted_loss(self, logits: torch.Tensor, labels: torch.Tensor, language: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy with the [language, label] weight table and the configured reduction."""
        per_example = F.cross_entropy(logits.float(), labels, reduction="none")
        if self.class_weights is None:
            return per_example.mean()
        if language is None:
            raise UserError(f"class weights need the '{self.language_column}' column in every batch")
        weights = self.class_weights.to(per_example.device)[language.to(per_example.device), labels]
        if self.args.reduction == "weighted_mean":
            return (weights * per_example).sum() / weights.sum().clamp_min(1e-12)
        return (weights * per_example).mean()

    def masked_input_neg_entropy(self, model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 3's sum_c p_c log p_c (or its mean over classes) on one all-[MASK] input.

        The input (`mask_entropy_input`): "drawn" = the special tokens around
        m [MASK] tokens, m ~ U{1..L-2} with L the batch's padded length;
        "last_row" = the released code's: the batch's last row with every
        non-pad token, [CLS] and [SEP] included, set to [MASK] (its attention
        mask and token types kept). The normalisation
        (`mask_entropy_normalisation`): "sum" over classes, as eq. 3 is
        printed, or "mean" over classes, as the released code computes it
        (1/C of the sum).
        """
        if self.args.mask_entropy_input == "last_row":
            input_ids, extra = self._last_row_masked(inputs)
        else:
            input_ids = self._drawn_masked(model, int(inputs["input_ids"].shape[1]))
            extra = {"attention_mask": torch.ones_like(input_ids)}
        logits = model(input_ids=input_ids, **extra)["logits"].float()
        log_p = F.log_softmax(logits, dim=-1)
        terms = log_p.exp() * log_p
        per_input = terms.mean(dim=-1) if self.args.mask_entropy_normalisation == "mean" else terms.sum(dim=-1)
        return per_input.mean()

    def _drawn_masked(self, model, max_length: int) -> torch.Tensor:
        tokenizer = self.processing_class
        prefix, suffix = special_tokens_around(tokenizer)
        upper = max(1, max_length - len(prefix) - len(suffix))
        # The draw depends on (seed, global step, call within the step) only, so
        # a run resumed from a checkpoint draws what an uninterrupted run draws.
        if self.state.global_step != self._mask_step:
            self._mask_step, self._mask_call = self.state.global_step, 0
        self._mask_call += 1
        generator = torch.Generator().manual_seed(
            self.args.seed * 1_000_003 + self.state.global_step * 1_009 + self._mask_call
        )
        length = int(torch.randint(1, upper + 1, (1,), generator=generator))
        ids = prefix + [tokenizer.mask_token_id] * length + suffix
        device = next(model.parameters()).device
        return torch.tensor([ids], device=device)

    def _last_row_masked(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokenizer = self.processing_class
        if tokenizer.mask_token_id is None:
            raise UserError("the tokenizer has no mask token: the masked-input entropy term needs one")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        row = inputs["input_ids"][-1:]
        real = row != pad_id
        input_ids = torch.where(real, torch.full_like(row, tokenizer.mask_token_id), row)
        extra = {"attention_mask": inputs["attention_mask"][-1:] if "attention_mask" in inputs else real.long()}
        if "token_type_ids" in inputs:
            extra["token_type_ids"] = inputs["token_type_ids"][-1:]
        return input_ids, extra

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Side losses are averaged since the last log and merged in (training logs only).
        if "loss" in logs and self._side_metrics:
            for key, values in self._side_metrics.items():
                logs[key] = float(np.mean(values))
            self._side_metrics.clear()
        if "loss" in logs and self.adversary_head is not None:
            logs.update(self._adversary_train_logs())
        if "learning_rate" in logs:
            logs.update(self.group_learning_rates())
        super().log(logs, start_time)

    def group_learning_rates(self) -> dict[str, float]:
        """learning_rate_<group> (body, head) of the last optimizer step.

        The Trainer's own `learning_rate` is the first group's only, taken
        before the scheduler steps; these are taken at the same point (a
        post-step hook of the optimizer), so body's equals it.
        """
        return dict(self._step_learning_rates)

    def _record_learning_rates(self, optimizer, *args, **kwargs) -> None:
        rates: dict[str, float] = {}
        for group in optimizer.param_groups:
            name = group.get("group")
            if name and f"learning_rate_{name}" not in rates:
                lr = group["lr"]
                rates[f"learning_rate_{name}"] = float(lr.item() if torch.is_tensor(lr) else lr)
        self._step_learning_rates = rates

    # ------------------------------------------------------------ optimiser

    def create_optimizer(self, model=None):
        """(body, head[, adversary]) x (decay, no decay); head and adversary at head_learning_rate; RAdam if `radam`."""
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        head_lr = self.args.head_learning_rate or self.args.learning_rate
        head = head_parameter_names(opt_model)
        adversary = {name for name in head if name.startswith(adv.MODULE_NAME + ".")}
        decay = set(self.get_decay_parameter_names(opt_model))

        def group_of(name: str) -> str:
            return "adversary" if name in adversary else "head" if name in head else "body"

        groups = []
        for group_name, lr in (("body", self.args.learning_rate), ("head", head_lr), ("adversary", head_lr)):
            for with_decay in (True, False):
                params = [
                    p
                    for n, p in opt_model.named_parameters()
                    if p.requires_grad and group_of(n) == group_name and (n in decay) == with_decay
                ]
                if params:
                    groups.append(
                        {
                            "params": params,
                            "weight_decay": self.args.weight_decay if with_decay else 0.0,
                            "lr": lr,
                            "group": group_name,
                        }
                    )
        if self.args.radam:
            optimizer_cls = torch.optim.RAdam
            optimizer_kwargs = {"betas": (self.args.adam_beta1, self.args.adam_beta2), "eps": self.args.adam_epsilon}
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k not in ("lr",)}
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        if hasattr(self.optimizer, "register_step_post_hook"):
            self.optimizer.register_step_post_hook(self._record_learning_rates)
        return self.optimizer

    # ------------------------------------------------------------ evaluation

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        self._ce_sum = [0.0, 0]
        if self.adversary_head is not None:
            self._adversary_eval_sums = [0.0, 0, 0]
        try:
            output = super().evaluation_loop(
                dataloader,
                description,
                prediction_loss_only=prediction_loss_only,
                ignore_keys=ignore_keys,
                metric_key_prefix=metric_key_prefix,
            )
            ce_sum, ce_n = self._ce_sum
            adversary_sums = self._adversary_eval_sums
        finally:
            self._ce_sum = self._adversary_eval_sums = None
        if self.args.world_size > 1:  # every rank saw its shard; the gathered logits below make it exact
            totals = self.accelerator.reduce(
                torch.tensor([ce_sum, ce_n], dtype=torch.float64, device=self.args.device), reduction="sum"
            )
            ce_sum, ce_n = float(totals[0]), int(totals[1])
        if ce_n:
            output.metrics[f"{metric_key_prefix}_ce"] = ce_sum / ce_n
        if adversary_sums is not None:
            self._adversary_eval_metrics(output.metrics, adversary_sums, metric_key_prefix)
        if self.args.world_size > 1:
            self._exact_loss_from_gathered(output, dataloader, metric_key_prefix)
        # Evaluators run here, before evaluate() logs, so their numbers reach
        # every logger and can select the best checkpoint.
        if metric_key_prefix == "eval":
            model = self.accelerator.unwrap_model(self.model)
            for evaluator in self._evaluators():
                compute = evaluator.compute_eval_metrics
                if self.is_world_process_zero():
                    extra = compute(model, self.processing_class)
                else:
                    extra = {}
                extra = self._broadcast_metrics(extra)
                for key, value in extra.items():
                    output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output

    def _adversary_eval_metrics(self, metrics: dict[str, float], sums: list[float], prefix: str) -> None:
        """<prefix>_language_adversary_loss / _accuracy over the rows of languages the head was trained on."""
        if self.args.world_size > 1:
            sums = self.accelerator.reduce(torch.tensor(sums, dtype=torch.float64, device=self.args.device),
                                           reduction="sum").tolist()
        ce_sum, correct, rows = sums
        if rows:
            metrics[f"{prefix}_language_adversary_loss"] = ce_sum / rows
            metrics[f"{prefix}_language_adversary_accuracy"] = correct / rows

    def _evaluators(self) -> list[Any]:
        """The declared evaluators, then callbacks that compute eval metrics (each once)."""
        found = list(self.evaluators)
        for callback in self.callback_handler.callbacks:
            if callable(getattr(callback, "compute_eval_metrics", None)) and callback not in found:
                found.append(callback)
        return found

    def _exact_loss_from_gathered(self, output, dataloader, prefix: str) -> None:
        """Under DDP, recompute the loss from the gathered, de-padded logits.

        The Trainer repeats each batch's mean loss per example; when the last
        batch is padded across processes, the padding's loss stands in for
        real examples. From the gathered logits the loss is exact: the same
        sum_i w_i l_i / N as one process computes.
        """
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        dataset = getattr(dataloader, "dataset", None)
        if logits is None or output.label_ids is None or dataset is None:
            return
        if len(dataset) != len(logits):
            return
        logits = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
        labels = torch.as_tensor(np.asarray(output.label_ids), dtype=torch.long)
        output.metrics[f"{prefix}_ce"] = float(F.cross_entropy(logits, labels))
        if self.language_column not in getattr(dataset, "column_names", []):
            return
        index = {lang: i for i, lang in enumerate(self.languages)}
        loss = self.weighted_loss(logits, labels, torch.tensor([index[lang] for lang in dataset[self.language_column]]))
        output.metrics[f"{prefix}_loss"] = float(loss)

    def _broadcast_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Evaluators run on the main process; every rank logs the same numbers."""
        if self.args.world_size <= 1:
            return metrics
        import torch.distributed as dist

        holder = [metrics]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]
