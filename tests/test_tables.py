"""detector.tables.format_table: aligned plain-text tables."""

import pytest

from detector.tables import format_table


def test_columns_line_up_numbers_right_text_left():
    text = format_table(["class", "AP", "images"], [["person", 0.5, 12], ["traffic light", 0.25, 3]])
    lines = text.splitlines()
    assert lines[0] == "class             AP  images"
    assert lines[1] == "-------------  -----  ------"
    assert lines[2] == "person         0.500      12"
    assert lines[3] == "traffic light  0.250       3"


def test_none_is_a_dash_and_align_can_be_forced():
    text = format_table(["a", "b"], [[None, "x"], [1, "yy"]], align="lr")
    assert text.splitlines()[2:] == ["-   x", "1  yy"]


def test_float_format_and_no_trailing_spaces():
    text = format_table(["name", "v"], [["a", 1.23456]], float_format=".1f")
    assert text.splitlines()[2] == "a     1.2"
    assert all(line == line.rstrip() for line in text.splitlines())


def test_header_only_table():
    assert format_table(["x", "yy"], []) == "x  yy\n-  --"


def test_ragged_rows_and_bad_align_are_rejected():
    with pytest.raises(ValueError, match="row 1 has 1 cells, expected 2"):
        format_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="align"):
        format_table(["a", "b"], [[1, 2]], align="lx")
