"""Questions asked in the terminal (`trader init`'s answers, the typed confirmations of
`trader approve` and `hermes approve`): rich's prompt loop, with the whole question passed to
input() and problems printed as plain lines.

Callers check that stdin is a terminal first; the end of input (Ctrl-D) raises EOFError and
Ctrl-C KeyboardInterrupt, as input() does, so each command decides what that means."""

from __future__ import annotations

from typing import Any, Callable, TextIO, TypeVar

from rich.console import Console
from rich.prompt import InvalidResponse, Prompt
from rich.text import Text, TextType

T = TypeVar("T")


class _Question(Prompt):
    """Asks until `parse` accepts the answer; an empty answer takes `fallback`."""

    def __init__(self, question: str, parse: Callable[[str], Any], fallback: str) -> None:
        # Text, not markup: a question or an error may hold [brackets] such as a default
        super().__init__(Text(question), console=Console(highlight=False))
        self.parse = parse
        self.fallback = fallback

    @classmethod
    def get_input(cls, console: Console, prompt: TextType, password: bool, stream: TextIO | None = None) -> str:
        # input() gets the question itself: readline then knows where the answer starts, and
        # the question stays one plain line, however the terminal or a screen reader shows it
        return input(prompt.plain if isinstance(prompt, Text) else str(prompt))

    def process_response(self, value: str) -> Any:
        try:
            return self.parse(value.strip() or self.fallback)
        except ValueError as exc:
            raise InvalidResponse(f"    {exc}; try again") from None

    def on_validate_error(self, value: str, error: InvalidResponse) -> None:
        # one unwrapped line, so a long list of choices stays readable and greppable
        self.console.print(Text(str(error.message)), soft_wrap=True)


def ask(question: str, default: str, parse: Callable[[str], T]) -> T:
    """`parse` of the answer to "question [default]: ", Enter taking the default; a ValueError's
    text is shown and the question asked again."""
    return _Question(f"{question} [{default}]", parse, default)()


def answer(question: str) -> str:
    """The answer to "question: ", stripped; asked once (a typed confirmation: a wrong answer
    is a refusal, not a reason to ask again)."""
    return _Question(question, str, "")()
