"""Dockerfile variable expansion and word splitting, after moby's shell lexer (frontend/dockerfile/shell).

Handles 'single' and "double" quotes, the escape character, $VAR, ${VAR}, ${VAR:-word}, ${VAR-word},
${VAR:+word}, ${VAR+word} and ${VAR:?message}. process_word keeps spaces; process_words splits on unquoted
white space (including white space that an unquoted expansion produced), as moby does."""

from __future__ import annotations

from nanovisor.errors import InvalidParameter


class _Words:
    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_raw(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.in_word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class ShellLex:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def process_word(self, text: str, env: dict[str, str]) -> str:
        return _Scan(text, env, self.escape).run()[0]

    def process_words(self, text: str, env: dict[str, str]) -> list[str]:
        return _Scan(text, env, self.escape).run()[1]


class _Scan:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def run(self, stop: str = "") -> tuple[str, list[str]]:
        words = _Words()
        out = ""
        while self.i < len(self.s):
            ch = self.peek()
            if stop and ch == stop:
                break
            if ch == "'":
                text = self.single_quote()
                out += text
                words.add_raw_string(text)
            elif ch == '"':
                text = self.double_quote()
                out += text
                words.add_raw_string(text)
            elif ch == "$":
                text = self.dollar()
                out += text
                words.add_string(text)
            else:
                self.next()
                if ch == self.esc:
                    if self.i >= len(self.s):
                        break  # a lone escape at the end is dropped
                    ch = self.next()
                    out += ch
                    words.add_raw(ch)
                else:
                    out += ch
                    words.add_char(ch)
        return out, words.result()

    def single_quote(self) -> str:
        self.next()
        start = self.i
        end = self.s.find("'", start)
        if end < 0:
            raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
        self.i = end + 1
        return self.s[start:end]

    def double_quote(self) -> str:
        self.next()
        out = ""
        while True:
            if self.i >= len(self.s):
                raise InvalidParameter("unexpected end of statement while looking for matching double-quote")
            ch = self.peek()
            if ch == '"':
                self.next()
                return out
            if ch == "$":
                out += self.dollar()
                continue
            self.next()
            if ch == self.esc and self.peek() in ('"', "$", self.esc):
                out += self.next()
            else:
                out += ch

    def _name(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        return self.s[start:self.i]

    def dollar(self) -> str:
        self.next()  # the $
        ch = self.peek()
        if ch != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()
        name = self._name()
        if not name:
            raise InvalidParameter(f"bad substitution: missing variable name in ${{{self.s[self.i:]}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({ch}) in substitution")
        word, _ = self.run(stop="}")
        if self.next() != "}":
            raise InvalidParameter("syntax error: missing '}'")
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word
        if ch == "+":
            return word if is_set else ""
        if not is_set:  # "?"
            raise InvalidParameter(f"{name}: {word or 'is not allowed to be empty' if colon else 'is not set'}")
        return value or ""
