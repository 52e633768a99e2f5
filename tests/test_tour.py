"""docs/tour.md is generated from the code it quotes (docs/tour.py): it cannot drift."""
import importlib.util
import io
import os

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("tour", os.path.join(ROOT, "docs", "tour.py"))
tour = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tour)


def test_the_committed_tour_is_what_the_code_gives_today():
    with io.open(tour.OUT, encoding="utf-8") as f:
        committed = f.read()
    assert committed == tour.tour(), "docs/tour.md is stale: run ./kit python docs/tour.py"


def test_every_stop_quotes_code_that_exists_line_for_line():
    for title, path, name, first, last, _ in tour.STOPS:
        code, a, b = tour.excerpt(path, name, first, last)
        source = io.open(os.path.join(ROOT, path), encoding="utf-8").read().splitlines()[a - 1:b]
        assert [l.strip() for l in code] == [l.strip() for l in source], title
        assert len(code) >= 3, title


@pytest.mark.parametrize("stop", [("trainer.py", "session_confg", None, None),  # a renamed function
                                  ("ops.py", "Batch_Normalization", r"no such line", None),
                                  ("nowhere.py", "main", None, None)])
def test_a_stop_naming_missing_code_is_a_one_line_error(stop):
    with pytest.raises(tour.TourError, match="correct STOPS in docs/tour.py"):
        tour.excerpt(*stop)
