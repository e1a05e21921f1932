"""XLM-R's fast tokenizer, rebuilt from the vocabulary inside an E5S1 file."""

from __future__ import annotations

import json
from pathlib import Path

from langtrainer.models.e5s1 import E5File

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                  "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}
MASK_ID = 250001


def _char_class(code_points: list[int]) -> str:
    """An Oniguruma character class matching exactly these code points."""
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(code_points)) + "]"


def build_tokenizer(e5: E5File):
    """XLM-R's SentencePiece tokenizer rebuilt with `tokenizers`.

    nmt_nfkc is stored flattened per code point; only its two kinds of rules
    that NFKC does not cover are kept (drop the character, map an odd space to
    ' '), then NFKC, collapse repeated spaces, Metaspace, Unigram.
    Saved as PreTrainedTokenizerFast: wrapping it as XLMRobertaTokenizer would
    drop this normaliser.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    h = e5.header
    dropped = [cp for cp, rep in e5.normaliser.items() if rep == ()]
    to_space = [cp for cp, rep in e5.normaliser.items() if rep == (32,)]
    steps = []
    if dropped:
        steps.append(normalizers.Replace(Regex(_char_class(dropped)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]

    tokenizer = Tokenizer(Unigram(list(zip(e5.pieces, e5.scores.tolist())), unk_id=h.unk_id,
                                  byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[h.bos_id], e5.pieces[h.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, h.bos_id), (eos, h.eos_id)])

    specials = dict(SPECIAL_TOKENS)
    # As in XLM-R: "<mask>" swallows the space before it.
    specials["mask_token"] = AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=h.max_positions,
                                   padding_side="right", model_input_names=["input_ids", "attention_mask"],
                                   **specials)
    expected = {"<s>": h.bos_id, "<pad>": h.pad_id, "</s>": h.eos_id, "<unk>": h.unk_id, "<mask>": MASK_ID}
    actual = {token: fast.convert_tokens_to_ids(token) for token in expected}
    if actual != expected:
        raise ValueError(f"special token ids {actual}, expected {expected}")
    return fast


def save_tokenizer(tokenizer, out_dir: Path) -> None:
    """Save so that transformers 4.x and 5.x both read the class name."""
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
