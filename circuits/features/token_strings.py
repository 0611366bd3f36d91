"""Token ids as the strings a researcher reads, decoded one token at a time and remembered."""

from typing import Any


class TokenStrings:
    """`strings[i]`: token `i` decoded on its own (`" Mary"`), or `<i>` past the tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._size = len(tokenizer)
        self._cache: dict[int, str] = {}

    def __getitem__(self, token: int) -> str:
        token = int(token)
        if token not in self._cache:
            if 0 <= token < self._size:
                self._cache[token] = self._tokenizer.decode([token])
            else:
                self._cache[token] = f"<{token}>"
        return self._cache[token]

    def many(self, tokens: Any) -> list[str]:
        return [self[t] for t in tokens]
