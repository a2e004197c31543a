import numpy as np
import pytest

from paddle_tag.data.labels import LabelSet
from paddle_tag.data.readers import Example
from paddle_tag.errors import DataError


def poems(*tag_lists: list[str], source: str = "dev.jsonl") -> list[Example]:
    return [Example(text="床前明月光", labels=tags, source=source, line=i + 1) for i, tags in enumerate(tag_lists)]


def test_ids_are_sorted_names_independent_of_line_order():
    forward = LabelSet.from_examples(poems(["送别"], ["西湖", "边塞"]))
    backward = LabelSet.from_examples(poems(["西湖", "边塞"], ["送别"]))
    assert forward == backward and forward.names == sorted(["送别", "西湖", "边塞"])


def test_a_tag_training_never_saw_is_named_with_its_first_line():
    labels = LabelSet.from_examples(poems(["送别"], ["西湖"], source="train.jsonl"))
    dev = poems(["送别"], ["庐山", "西湖"], ["庐山"], ["洞庭湖"])
    with pytest.raises(DataError, match=r"2 label\(s\) that training never saw: '庐山' \(first at dev.jsonl:2\); "
                                        r"'洞庭湖' \(first at dev.jsonl:4\)"):
        labels.check_known(dev, "eval")
    labels.check_known(poems(["西湖"], []), "eval")  # known tags and untagged items pass


def test_multi_hot_rows_and_single_label_check():
    labels = LabelSet(["送别", "西湖", "边塞"])
    hot = labels.encode(poems(["西湖", "边塞"], []), "multi_label")
    np.testing.assert_array_equal(hot, [[0, 1, 1], [0, 0, 0]])
    with pytest.raises(DataError, match="needs exactly one label"):
        labels.encode(poems(["西湖", "边塞"]), "multi_class")
