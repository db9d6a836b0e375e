"""The terminal's questions: Enter takes the default, a bad answer is explained and asked again,
the end of input is the caller's to handle, and text in [brackets] is shown as written."""

from __future__ import annotations

import pytest

from trader.prompt import answer, ask


def answers(monkeypatch, *replies: str) -> list[str]:
    asked: list[str] = []
    queue = list(replies)

    def fake_input(prompt: str = "") -> str:
        asked.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    monkeypatch.setattr("builtins.input", fake_input)
    return asked


def positive(text: str) -> int:
    if int(text) <= 0:
        raise ValueError(f"{text} is not above 0 [expected 1, 2, ...]")
    return int(text)


def test_enter_takes_the_default_parsed(monkeypatch):
    asked = answers(monkeypatch, "   ")
    assert ask("  Bars", "20", positive) == 20
    assert asked == ["  Bars [20]: "]


def test_a_bad_answer_is_explained_and_asked_again(monkeypatch, capsys):
    asked = answers(monkeypatch, "-3", "7")
    assert ask("Bars", "20", positive) == 7
    assert len(asked) == 2
    assert "    -3 is not above 0 [expected 1, 2, ...]; try again\n" in capsys.readouterr().out


def test_end_of_input_is_raised_to_the_caller(monkeypatch):
    answers(monkeypatch, "-3")
    with pytest.raises(EOFError):
        ask("Bars", "20", positive)


def test_a_confirmation_is_asked_once_and_stripped(monkeypatch):
    asked = answers(monkeypatch, " apply \n")
    assert answer("Type 'apply' to approve") == "apply"
    assert asked == ["Type 'apply' to approve: "]
