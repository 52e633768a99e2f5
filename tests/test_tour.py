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


def test_the_readme_links_to_the_loop_printed_whole():
    """The README's "Where is ..." row for the training loop links to the tour's stop that
    prints trainer.train from its first line to its last."""
    import inspect
    import re
    import trainer
    from paperside import github_anchor
    readme = io.open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    row = [l for l in readme.splitlines() if l.startswith("| the training loop")]
    assert len(row) == 1, row
    anchor = re.search(r"\(docs/tour\.md#([^)]+)\)", row[0]).group(1)
    text = io.open(tour.OUT, encoding="utf-8").read()
    sections = re.split(r"^## ", text, flags=re.M)
    target = [s for s in sections if github_anchor(s.splitlines()[0]) == anchor]
    assert len(target) == 1, (anchor, [github_anchor(s.splitlines()[0]) for s in sections[1:]])
    assert inspect.getsource(trainer.train).strip() in target[0]


@pytest.mark.parametrize("argv, code", [(["--chek"], 2), (["--help"], 0)])
def test_an_unknown_flag_or_help_writes_no_tour(tmp_path, monkeypatch, capsys, argv, code):
    # the generator looked for "--check" alone, so both of these wrote docs/tour.md
    path = tmp_path / "tour.md"
    monkeypatch.setattr(tour, "OUT", str(path))
    with pytest.raises(SystemExit) as e:
        tour.main(argv)
    assert e.value.code == code and not path.exists()
    out_text, err_text = capsys.readouterr()
    assert "--check" in (err_text if code else out_text)  # the usage: on stderr for an error, stdout for --help
    assert tour.main(["--check"]) == 1 and not path.exists()


def test_the_loop_stop_calls_what_it_fetches_the_cross_entropy():
    """The loop fetches g.xent, which the logs print as train_loss; the stop called it "the loss", the
    name stop 6 gives to cross-entropy plus weight decay (g.loss), which the loop never fetches."""
    stop = [s for s in tour.STOPS if s[1:5] == ("trainer.py", "train", None, None)]
    assert len(stop) == 1
    code = "\n".join(tour.excerpt(*stop[0][1:5])[0])
    assert "g.xent" in code and "g.loss" not in code
    text = " ".join(stop[0][5].split())
    assert "the cross-entropy" in text and "train_loss" in text
    assert "the train op, the loss" not in text
