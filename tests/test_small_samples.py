"""Small-sample warnings: one line per language with few test rows, small training cell, large weight."""

from langtrainer.data.small_samples import counts_table, small_sample_warnings


def test_one_line_per_finding_with_worked_numbers():
    lines = small_sample_warnings(
        train_counts={"en": {"utils": 40, "net": 12}, "ja": {"utils": 4, "net": 0}},
        test_rows={"en": 120, "ja": 9},
        class_weights={"en": {"utils": 0.65, "net": 2.2}, "ja": {"utils": 9.7, "net": 0.0}},
    )
    # 9 rows: Wilson at 4/9 spans about 0.19..0.73, half-width 0.27
    assert lines == [
        "ja: 9 test rows (fewer than 30): its accuracy and macro-F1 decide little "
        "(95 % interval of an accuracy up to ±0.27)",
        "ja / utils: 4 training rows (fewer than 10): what the model learns of 'utils' in ja rests on a handful of texts",
        "ja / net: 0 training rows (fewer than 10): what the model learns of 'net' in ja rests on no texts",
        "ja / utils: class weight 9.7 on 4 rows (above 5): a few rows carry a large share of the language's loss",
    ]
    assert all("\n" not in line for line in lines)


def test_nothing_to_say_on_ample_data_and_thresholds_are_parameters():
    assert small_sample_warnings({"en": {"a": 10}}, {"en": 30}, {"en": {"a": 5.0}}) == []
    assert len(small_sample_warnings({"en": {"a": 10}}, {"en": 30}, min_test_rows=31, min_train_rows=11)) == 2
    assert counts_table([[1, 2], [3, 4]], ["de", "en"], ["a", "b"]) == {"de": {"a": 1, "b": 2}, "en": {"a": 3, "b": 4}}


def test_a_label_absent_from_every_language_is_one_line():
    lines = small_sample_warnings({"en": {"a": 50, "b": 0}, "fr": {"a": 40, "b": 0}})
    assert lines == ["b: no training rows in any language: the model cannot learn it"]


def test_audit_warns_about_its_training_cells_and_a_recipes_test_rows():
    import pandas as pd

    from langtrainer.data.audit import audit, split_role

    rows = [("en", "a")] * 40 + [("en", "b")] * 40 + [("ja", "a")] * 36 + [("ja", "b")] * 4
    frame = pd.DataFrame(rows, columns=["language", "label"])
    # ja / b: 4 rows, eq. 2 weight 40 / (2 * 4) = 5.0 (not above 5); ja / a: 40 / 72 = 0.56
    assert audit(frame).small_samples == [
        "ja / b: 4 training rows (fewer than 10): what the model learns of 'b' in ja rests on a handful of texts"]
    assert audit(frame, role="test").small_samples == []  # 40 rows per language
    assert audit(frame.iloc[:100], role="test").small_samples[0].startswith("ja: 20 test rows (fewer than 30)")
    assert audit(frame).to_dict()["small_samples"] == audit(frame).small_samples
    assert [split_role(n) for n in (None, "train", "train_imbalanced", "validation", "test")] == [
        "train", "train", "train", None, "test"]
