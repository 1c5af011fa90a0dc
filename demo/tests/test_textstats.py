from textstats import average_word_length, format_report, sentences, word_counts, words

TEXT = "The cat sat. The cat ran! Did the dog see it?"


def test_words_are_lower_cased_and_unpunctuated():
    assert words("Hello, World! It's me.") == ["hello", "world", "it's", "me"]


def test_word_counts():
    counts = word_counts(TEXT)
    assert counts["the"] == 3
    assert counts["cat"] == 2
    assert counts["dog"] == 1


def test_sentences():
    assert sentences(TEXT) == ["The cat sat", "The cat ran", "Did the dog see it"]


def test_average_word_length():
    assert average_word_length("a bb ccc") == 2.0


def test_report_lists_the_most_frequent_word_first():
    report = format_report(TEXT, top=2)
    assert "words:               11" in report
    assert "sentences:           3" in report
    assert report.splitlines()[5].split() == ["the", "3"]
