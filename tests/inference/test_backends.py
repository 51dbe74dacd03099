"""What every backend shares: the stop-sequence filter (inference.backends)."""

from inference.backends import StopSequenceFilter


def test_stop_filter_holds_back_a_possible_stop_prefix():
    f = StopSequenceFilter(["<|user|>"])
    assert f.feed("Hello <|us") == "Hello "
    assert f.feed("er|> more") == ""
    assert f.stopped and f.emitted == "Hello "


def test_stop_filter_releases_a_prefix_that_did_not_become_a_stop():
    f = StopSequenceFilter(["###"])
    assert f.feed("a #") == "a "
    assert f.feed("#") == ""  # "##" could still become "###"
    assert f.feed(" b") == "## b"
    assert f.flush() == ""
    g = StopSequenceFilter(["###"])
    g.feed("end ##")
    assert g.flush() == "##" and g.emitted == "end ##"
