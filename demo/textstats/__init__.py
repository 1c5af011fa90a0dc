"""textstats: small statistics about plain text (word counts, sentences, a report)."""

from textstats.counter import average_word_length, sentences, word_counts, words
from textstats.report import format_report

__all__ = ["average_word_length", "format_report", "sentences", "word_counts", "words"]
