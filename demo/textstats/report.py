"""A short plain-text report about a text."""

from __future__ import annotations

from textstats.counter import average_word_length, sentences, word_counts


def format_report(text: str, top: int = 5) -> str:
    """Totals, the average word length and the `top` most frequent words."""
    counts = word_counts(text)
    lines = [
        f"words:               {sum(counts.values())}",
        f"distinct words:      {len(counts)}",
        f"sentences:           {len(sentences(text))}",
        f"average word length: {average_word_length(text):.2f}",
        "most frequent:",
    ]
    # TODO: break ties alphabetically; most_common() keeps them in the order the words
    # first appear, so two texts with the same counts can give different reports.
    for word, count in counts.most_common(top):
        lines.append(f"  {word:<18} {count}")
    return "\n".join(lines)
