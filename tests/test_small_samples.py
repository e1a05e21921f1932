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
