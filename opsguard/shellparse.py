"""Shell text -> simple commands: the parser under the read-only vocabulary (opsguard/readonly.py).

It follows the part of bash's grammar that probes use (``$(...)``, ``${name}`` and ``${name:-default}``,
quoted here-documents, ``if``/``for``/``while``/``case``, ``&&``/``||``/``|``, redirections with fd
numbers) and raises ShellSyntaxUnknown for anything else: the vocabulary then counts the text as "may
change the host". Each word knows its literal value when it has one, and the scripts it substitutes,
which the vocabulary checks in turn.

SAFETY: where bash and a simple reading could disagree about where a quote, a word, a command or a
here-document ends, the whole category is refused rather than modelled:

- backquotes (their backslash rules differ from ``$(...)``), ``$'...'`` and ``$"..."`` anywhere
  (also inside double quotes, where bash reads ``$'`` as two plain characters);
- backslash-newline outside single quotes (bash joins the lines first, also inside double quotes and in
  a here-document's delimiter);
- control characters other than tab and newline (a carriage return in an HTTP header...);
- here-document delimiters other than ``[A-Za-z0-9_]+``, bare or wholly in single or double quotes; a
  here-document inside ``$(...)``; an unquoted body with ``$``, a backquote or a backslash;
- ``{name}<file`` (bash opens a new descriptor and stores its number in name);
- an unquoted ``~`` makes a word computed (``~-`` is $OLDPWD, which ``${OLDPWD:=-delete}`` sets);
  ``${...}`` is only ``${name}`` or ``${name:-default}`` / ``${name:+word}`` / ``${name:?word}``:
  never ``${name=...}`` or ``${name:=...}``, which assign;
- a reserved word (``for``, ``case``, ``if``...) is one only unquoted and first in its command (bash
  runs ``\for``, ``'case'`` or ``x=1 case`` as a command named for or case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("&&", "||", ";;", "|&", "&", "|", ";", "(", ")")
_REDIRECTS = ("&>>", "&>", ">>", ">&", ">|", "<<-", "<<", "<&", "<>", ">", "<")
_BRACES = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")
# ${name}, ${#name}, ${name:-default}, ${name:+word}, ${name:?word}: never = or := (they assign). Reading
# ${NAME} is no more than $NAME; what made ~- an option was ${OLDPWD:=-delete} assigning it.
_PARAMETER = re.compile(r"#?[A-Za-z_][A-Za-z0-9_]*(:?[-?+][A-Za-z0-9_./:@%+=, -]*)?|[0-9#?$!*@-]")
# Bash's here-document delimiters that this module follows: a plain word, bare or wholly quoted.
_HEREDOC_DELIMITER = re.compile(r"[A-Za-z0-9_]+|'[A-Za-z0-9_]+'|\"[A-Za-z0-9_]+\"")
# Characters bash reads as a name after $ (ASCII only: str.isalpha() also accepts letters bash does not).
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_FD_VARIABLE = re.compile(r"\{[^{}]*\}")
_KEYWORDS = {"if", "then", "elif", "else", "fi", "do", "done", "while", "until", "{", "}", "!", "esac", "for", "case"}


class ShellSyntaxUnknown(ValueError):
    """The text uses shell syntax this module does not follow (so it is not known to be read-only)."""


@dataclass
class Word:
    """One shell word: its value when fully literal (quotes removed), and the scripts it substitutes."""

    raw: str
    literal: str | None
    scripts: list[str] = field(default_factory=list)


@dataclass
class Redirect:
    """One redirection: the operator (``>``, ``2>``, ``<<``...) and its target word."""

    operator: str
    target: Word


@dataclass
class SimpleCommand:
    """A command with its leading assignments, words and redirections."""

    assignments: list[Word] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


# -- lexing --------------------------------------------------------------------------------------------


class _Lexer:
    """Splits shell text into words, operators and redirections (POSIX sh with the bash bits probes use)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0
        self.tokens: list[tuple[str, object]] = []
        self._heredocs: list[tuple[str, bool, bool]] = []

    def run(self) -> list[tuple[str, object]]:
        text = self.text
        while self.index < len(text):
            char = text[self.index]
            if char in " \t":
                self.index += 1
            elif char == "\\" and text.startswith("\\\n", self.index):
                raise ShellSyntaxUnknown("a backslash-newline (line continuation)")
            elif char == "#" and self._at_word_start():
                end = text.find("\n", self.index)
                self.index = len(text) if end < 0 else end
            elif char == "\n":
                self.tokens.append(("op", "\n"))
                self.index += 1
                self._read_heredoc_bodies()
            elif self._redirect_ahead():
                self._read_redirect()
            elif text.startswith("((", self.index):
                # An arithmetic command evaluates variables as expressions: a value can run code.
                raise ShellSyntaxUnknown("an arithmetic command (( ))")
            elif any(text.startswith(operator, self.index) for operator in _OPERATORS):
                operator = next(op for op in _OPERATORS if text.startswith(op, self.index))
                self.tokens.append(("op", operator))
                self.index += len(operator)
            else:
                word = self._read_word()
                if self.text[self.index : self.index + 1] in ("<", ">") and _FD_VARIABLE.fullmatch(word.raw):
                    # {name}<file: bash opens a new descriptor (on /dev/tcp/... a connection) and names it.
                    raise ShellSyntaxUnknown("a {name} descriptor redirection")
                self.tokens.append(("word", word))
        if self._heredocs:
            raise ShellSyntaxUnknown("a here-document without its body")
        return self.tokens

    def _at_word_start(self) -> bool:
        return self.index == 0 or self.text[self.index - 1] in " \t\n;&|()"

    def _redirect_ahead(self) -> bool:
        position = self.index
        while position < len(self.text) and self.text[position].isdigit():
            position += 1
        if position > self.index and not self._at_word_start():
            return False
        return any(self.text.startswith(operator, position) for operator in _REDIRECTS)

    def _read_redirect(self) -> None:
        start = self.index
        while self.text[self.index].isdigit():
            self.index += 1
        operator = next(op for op in _REDIRECTS if self.text.startswith(op, self.index))
        self.index += len(operator)
        written = self.text[start : self.index]  # with its file descriptor, e.g. "2>"
        while self.index < len(self.text) and self.text[self.index] in " \t":
            self.index += 1
        if self.index >= len(self.text) or self.text[self.index] in "\n;&|()<>":
            raise ShellSyntaxUnknown("a redirection without a target")
        target = self._read_word()
        redirect = Redirect(written, target)
        self.tokens.append(("redirect", redirect))
        if operator in ("<<", "<<-"):
            if not _HEREDOC_DELIMITER.fullmatch(target.raw):
                raise ShellSyntaxUnknown("a here-document delimiter other than a plain word, bare or wholly quoted")
            quoted = target.raw[0] in "'\""
            self._heredocs.append((target.raw.strip("'\""), quoted, operator == "<<-"))

    def _read_heredoc_bodies(self) -> None:
        for delimiter, quoted, strip_tabs in self._heredocs:
            lines: list[str] = []
            while True:
                if self.index >= len(self.text):
                    raise ShellSyntaxUnknown(f"here-document {delimiter!r} is not terminated")
                end = self.text.find("\n", self.index)
                end = len(self.text) if end < 0 else end
                line = self.text[self.index : end]
                self.index = min(end + 1, len(self.text))
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                lines.append(line)
            body = "\n".join(lines)
            if not quoted and any(mark in body for mark in "$`\\"):
                # An unquoted here-document expands $(...), `...` and ${...}: not followed, so not read-only.
                raise ShellSyntaxUnknown("an unquoted here-document with expansions")
        self._heredocs.clear()

    def _read_word(self) -> Word:
        word, self.index = _scan_word(self.text, self.index)
        return word


def _scan_word(text: str, index: int) -> tuple[Word, int]:
    """Given text and a start index, return the word there and the index after it.

    A word whose unquoted part holds a glob (``*``, ``?``, ``[``) or a brace expansion (``{a,b}``,
    ``{1..3}``) has no literal value: the shell turns it into other words (a file named ``-delete``...).
    """
    start = index
    parts: list[str] = []
    literal = True
    scripts: list[str] = []
    unquoted: list[str] = []
    while index < len(text):
        char = text[index]
        if char in " \t\n;&|()<>":
            break
        if char == "\\":
            if index + 1 < len(text) and text[index + 1] == "\n":
                raise ShellSyntaxUnknown("a backslash-newline (line continuation)")
            parts.append(text[index + 1 : index + 2])
            index += 2
        elif char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                raise ShellSyntaxUnknown("an unterminated single quote")
            parts.append(text[index + 1 : end])
            index = end + 1
        elif char == '"':
            index, text_part, is_literal = _scan_double_quoted(text, index + 1, scripts)
            parts.append(text_part)
            literal = literal and is_literal
        elif char == "$":
            index, is_literal, value = _scan_dollar(text, index, scripts)
            literal = literal and is_literal
            parts.append(value)
        elif char == "`":
            raise ShellSyntaxUnknown("a backquote (use $(...))")
        else:
            parts.append(char)
            unquoted.append(char)
            index += 1
    raw = text[start:index]
    bare = "".join(unquoted)
    if raw not in ("[", "[[", "]", "]]") and (any(mark in bare for mark in "*?[") or _BRACES.search(bare)):
        literal = False
    if "~" in bare:
        literal = False  # tilde expansion: ~ is $HOME, ~- is $OLDPWD, ~+ is $PWD (also after = and :)
    return Word(raw=raw, literal="".join(parts) if literal else None, scripts=scripts), index


def _scan_double_quoted(text: str, index: int, scripts: list[str]) -> tuple[int, str, bool]:
    parts: list[str] = []
    literal = True
    while True:
        if index >= len(text):
            raise ShellSyntaxUnknown("an unterminated double quote")
        char = text[index]
        if char == '"':
            return index + 1, "".join(parts), literal
        if char == "\\" and index + 1 < len(text) and text[index + 1] in '$`"\\\n':
            if text[index + 1] == "\n":
                raise ShellSyntaxUnknown("a backslash-newline (line continuation)")
            parts.append(text[index + 1])
            index += 2
        elif char == "$":
            index, is_literal, value = _scan_dollar(text, index, scripts)
            literal = literal and is_literal
            parts.append(value)
        elif char == "`":
            raise ShellSyntaxUnknown("a backquote (use $(...))")
        else:
            parts.append(char)
            index += 1


def _scan_dollar(text: str, index: int, scripts: list[str]) -> tuple[int, bool, str]:
    """Given text at a '$', return (index after the expansion, whether it was literal, its literal value).

    Refused (ShellSyntaxUnknown): arithmetic ``$((...))`` and ``$[...]`` (an expression evaluates the
    variables it names, and a value like ``a[$(cmd)]`` runs cmd); any ``${...}`` but a plain name with
    an optional plain default (``${x}``, ``${x:-/tmp}``), never one that assigns (``${x=..}``, ``${x:=..}``); ``$'...'`` and ``$"..."`` (also inside
    double quotes, where bash does not treat them specially: refusing both readings is simpler).
    """
    following = text[index + 1 : index + 2]
    if text.startswith("$((", index) or following == "[":
        raise ShellSyntaxUnknown("an arithmetic expansion")
    if following == "(":
        end = _find_closing(text, index + 2, "(", ")")
        scripts.append(text[index + 2 : end])
        return end + 1, False, ""
    if following == "{":
        end = text.find("}", index + 2)
        if end < 0 or not _PARAMETER.fullmatch(text[index + 2 : end]):
            raise ShellSyntaxUnknown("a ${...} expansion other than a plain name with a plain default")
        return end + 1, False, ""
    if following in ("'", '"'):
        # $'...' decodes escapes (\' is a quote inside it); $"..." is translated text; inside double
        # quotes bash reads both as plain characters. Not followed in any of these readings.
        raise ShellSyntaxUnknown(f"${following}...")
    if following and (following in _NAME_START or following in "0123456789@*#?$!-"):
        if following in _NAME_START:
            match = _NAME.match(text, index + 1)
            assert match is not None
            return match.end(), False, ""
        return index + 2, False, ""
    return index + 1, True, "$"


def _find_closing(text: str, index: int, opening: str, closing: str) -> int:
    """Given text just after an opening bracket, return the index of its matching closing bracket."""
    depth = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                break
            index = end + 1
            continue
        if char == '"':
            index, _, _ = _scan_double_quoted(text, index + 1, [])
            continue
        if char == "`":
            raise ShellSyntaxUnknown("a backquote (use $(...))")
        if text.startswith("<<", index):
            # A here-document's body may hold a ) or a quote that a simple scan would misread.
            raise ShellSyntaxUnknown("a here-document inside a command substitution")
        if char == "#" and (index == 0 or text[index - 1] in " \t\n;&|("):
            # A comment inside $(...) hides what closes it from a simple scan: not followed.
            raise ShellSyntaxUnknown("a comment inside a command substitution")
        if text.startswith("$(", index):
            index = _find_closing(text, index + 2, "(", ")") + 1
            continue
        if text.startswith(closing, index):
            depth -= 1
            if depth == 0:
                return index
            index += len(closing)
            continue
        if text.startswith(opening, index):
            depth += 1
            index += len(opening)
            continue
        index += 1
    raise ShellSyntaxUnknown(f"an unterminated {opening}")


# -- parsing into simple commands ----------------------------------------------------------------------


def simple_commands(text: str) -> list[SimpleCommand]:
    """Given shell text, return its simple commands (control words dropped); raise ShellSyntaxUnknown if it cannot.

    The words of a ``for`` list and of a ``case`` (its word and its patterns) become the assignments of
    a command of their own, without words: they are checked for what they substitute, never run.
    """
    if _CONTROL.search(text):
        raise ShellSyntaxUnknown("a control character (only tab and newline are followed)")
    tokens = _Lexer(text).run()
    commands: list[SimpleCommand] = []
    current = SimpleCommand()
    state = "command"  # command | for-name | for-in | for-words | case-word | case-in | case-pattern
    open_cases = 0  # a ;; or an esac outside a case is a syntax error to bash, not the start of patterns
    for kind, value in tokens:
        if kind == "op":
            operator = str(value)
            if state == "case-pattern":
                if operator == ")":
                    _finish(current, commands)
                    current = SimpleCommand()
                    state = "command"
                elif operator not in ("|", "(", "\n"):
                    raise ShellSyntaxUnknown(f"{operator!r} in a case pattern")
                continue
            if state == "for-words" and operator in (";", "\n"):
                _finish(current, commands)
                current = SimpleCommand()
                state = "command"
                continue
            if state == "case-in" and operator == "\n":
                continue
            if state != "command":
                raise ShellSyntaxUnknown(f"{operator!r} inside an unfinished {state.split('-')[0]} construct")
            if operator == ";;":
                if not open_cases:
                    raise ShellSyntaxUnknown("';;' outside a case")
                _finish(current, commands)
                current = SimpleCommand()
                state = "case-pattern"
                continue
            if operator == "(" and current.words:
                raise ShellSyntaxUnknown("a function definition")
            if operator == "(" and current.assignments and not current.words:
                # SAFETY: x=(... [k]=v) is an array: bash evaluates each [k] as arithmetic, which runs a $(...)
                # found in a variable's value (found by a review); it is not a subshell after an assignment.
                raise ShellSyntaxUnknown("an array assignment")
            _finish(current, commands)
            current = SimpleCommand()
            continue
        if kind == "redirect":
            assert isinstance(value, Redirect)
            if state != "command":
                raise ShellSyntaxUnknown(f"a redirection inside an unfinished {state.split('-')[0]} construct")
            current.redirects.append(value)
            continue
        assert isinstance(value, Word)
        word = value
        if state == "for-name":
            if not _NAME.fullmatch(word.raw):
                raise ShellSyntaxUnknown("a for loop whose variable is not a plain name")
            state = "for-in"
            continue
        if state == "for-in":
            if word.raw != "in":
                raise ShellSyntaxUnknown("a for loop without 'in'")
            state = "for-words"
            continue
        if state == "for-words":
            current.assignments.append(word)  # checked for substitutions only
            continue
        if state == "case-word":
            current.assignments.append(word)
            state = "case-in"
            continue
        if state == "case-in":
            if word.raw != "in":
                raise ShellSyntaxUnknown("a case without 'in'")
            _finish(current, commands)
            current = SimpleCommand()
            state = "case-pattern"
            continue
        if state == "case-pattern":
            if word.raw == "esac" and not current.assignments:
                open_cases -= 1
                state = "command"
                continue
            current.assignments.append(word)
            continue
        # SAFETY: a reserved word only unquoted (raw, no quote or backslash) and first in its command:
        # bash runs \for, 'case' and x=1 case as commands named for and case.
        if not (current.words or current.assignments or current.redirects) and word.raw in _KEYWORDS:
            if word.raw == "for":
                state = "for-name"
            elif word.raw == "case":
                state = "case-word"
                open_cases += 1
            elif word.raw == "esac":
                if not open_cases:
                    raise ShellSyntaxUnknown("'esac' outside a case")
                open_cases -= 1
            continue
        if not current.words and _ASSIGNMENT.match(word.raw):
            current.assignments.append(word)
            continue
        current.words.append(word)
    if state != "command":
        raise ShellSyntaxUnknown(f"an unfinished {state.split('-')[0]} construct")
    _finish(current, commands)
    return commands


def _finish(command: SimpleCommand, commands: list[SimpleCommand]) -> None:
    if command.words or command.assignments or command.redirects:
        commands.append(command)
