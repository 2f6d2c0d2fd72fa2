from inlet.index.chunking import approx_tokens, chunk_text, split_blocks


def words(n: int, stem: str = "word") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def test_short_text_is_one_chunk():
    chunks = chunk_text("Just one paragraph.", approx_tokens, max_tokens=50)
    assert [c.text for c in chunks] == ["Just one paragraph."]


def test_paragraphs_are_packed_whole_and_never_exceed_the_budget():
    text = "\n\n".join(words(20, f"p{i}x") for i in range(10))
    chunks = chunk_text(text, approx_tokens, max_tokens=60, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert approx_tokens([chunk.text])[0] <= 60 + 2
        for para in chunk.text.split("\n\n"):
            assert len(para.split()) == 20  # no paragraph was cut


def test_headings_start_new_chunks():
    text = "# Alpha\n\nalpha text here\n\n# Beta\n\nbeta text here"
    chunks = chunk_text(text, approx_tokens, max_tokens=500)
    assert [c.text.splitlines()[0] for c in chunks] == ["# Alpha", "# Beta"]


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    text = "\n\n".join(f"Sentence number {i} stands alone." for i in range(30))
    chunks = chunk_text(text, approx_tokens, max_tokens=40, overlap=10)
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:]):
        assert before.text.split("\n\n")[-1] == after.text.split("\n\n")[0]


def test_a_giant_block_is_split_by_sentences_then_words():
    text = ". ".join(words(30, f"s{i}w").capitalize() for i in range(6)) + "." + " " + words(400, "long")
    chunks = chunk_text(text, approx_tokens, max_tokens=50, overlap=0)
    assert all(approx_tokens([c.text])[0] <= 52 for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert "long399" in joined and "s0w0" in joined.lower()


def test_chat_lines_become_blocks_when_a_thread_is_long():
    thread = "\n".join(f"alice 10:{i:02d}: message {i} " + words(10) for i in range(40))
    blocks = split_blocks(thread)
    assert len(blocks) == 40
    chunks = chunk_text(thread, approx_tokens, max_tokens=80, overlap=0)
    assert all(c.text.startswith("alice") for c in chunks)


def test_overlap_takes_the_last_words_of_a_paragraph_too_long_to_repeat():
    text = "\n\n".join(words(40, f"p{i}x") for i in range(4))
    chunks = chunk_text(text, approx_tokens, max_tokens=70, overlap=13)
    assert len(chunks) == 4 and all(approx_tokens([c.text])[0] <= 70 + 2 for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        tail = after.text.split("\n\n")[0].split()
        assert 0 < len(tail) <= 10 and before.text.split()[-len(tail) :] == tail


def test_hard_wrapped_lines_keep_single_newlines():
    """A long paragraph of hard-wrapped lines (mail) is split by line but rejoined as it was."""
    lines = [f"line {n} of a hard wrapped mail paragraph about the gas curve shift" for n in range(40)]
    text = "Subject: curve\n\n" + "\n".join(lines)
    chunks = chunk_text(text, approx_tokens, max_tokens=120, overlap=0)
    joined = "\n".join(c.text for c in chunks)
    assert "\n\n" not in joined.split("Subject: curve", 1)[1].lstrip("\n")
    for chunk in chunks:
        assert "\n\n" not in chunk.text or chunk.text.startswith("Subject: curve\n\n")
    assert sum(c.text.count("line ") for c in chunks) == 40 + 0  # nothing lost, nothing doubled
    assert chunks[0].text.startswith("Subject: curve\n\nline 0 of")


def test_each_piece_is_tokenised_once():
    """Counting is the chunker's own cost beside the model's: a paragraph counted as a block is not
    counted again as a piece (issue 17)."""
    counted: list[str] = []

    def count(texts):
        counted.extend(texts)
        return approx_tokens(texts)

    text = "\n\n".join(f"Paragraph {i} about the harbour lantern and the meadow." for i in range(40))
    chunks = chunk_text(text, count, max_tokens=60, overlap=8)
    assert len(chunks) > 3 and chunks == chunk_text(text, approx_tokens, max_tokens=60, overlap=8)
    assert len(counted) == len(set(counted)) == 40


def per_character(texts):
    """One token a character: what the model's tokenizer gives Chinese text."""
    return [len(t) for t in texts]


SENTENCES = [f"第{i}条：数据库迁移计划在星期五完成，负责人需要确认备份与回滚方案。" for i in range(60)]


def test_a_chinese_paragraph_is_cut_after_its_sentences_and_keeps_its_text() -> None:
    """Chinese has no spaces and its full stop takes none after it: the paragraph is still cut at
    `。` into chunks within the budget, and nothing is inserted between its sentences."""
    text = "".join(SENTENCES) + "特别说明：熊猫仓库的钥匙由李建国保管。"
    chunks = chunk_text(text, per_character, max_tokens=200, overlap=0)
    assert len(chunks) > 5
    assert all(len(c.text) <= 200 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert chunks[-1].text.endswith("特别说明：熊猫仓库的钥匙由李建国保管。")


def test_a_chinese_sentence_too_long_alone_is_cut_by_characters_and_overlaps_by_characters() -> None:
    text = "，".join(s.rstrip("。") for s in SENTENCES[:20]) + "。"  # one sentence of 600 characters
    chunks = chunk_text(text, per_character, max_tokens=100, overlap=10)
    assert len(chunks) >= 6 and all(len(c.text) <= 100 + 10 for c in chunks)
    assert all(c.text in text for c in chunks)
    assert chunks[1].text[:5] in chunks[0].text[-12:]  # the overlap repeats the previous chunk's end


def test_a_run_without_whitespace_is_cut_at_the_budget() -> None:
    """A 200,000-character hex dump or `data:` URI between two paragraphs: every chunk within the
    budget (the model reads no more), the paragraphs kept whole, no character lost or added."""
    run = "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAA" * 8300
    text = f"Heronswitch failover steps are below.\n\n{run}\n\nThen restart the marmotqueue worker."

    def count(texts):
        return [max(1, len(t) // 3) for t in texts]

    chunks = chunk_text(text, count, max_tokens=200, overlap=0)
    assert all(count([c.text])[0] <= 200 for c in chunks)
    assert len(chunks) > 100 and chunks[0].text.startswith("Heronswitch failover steps are below.\n\n")
    assert chunks[-1].text.endswith("\n\nThen restart the marmotqueue worker.")
    assert "".join(c.text for c in chunks).replace("\n\n", "") == text.replace("\n\n", "")


def test_an_english_sentence_split_by_words_is_cut_again_where_a_piece_is_over_the_budget() -> None:
    text = " ".join(["a"] * 50 + ["averyveryverylongwordthatcountsmanytokens"] * 10 + ["b"] * 50)

    def count(texts):
        return [sum(8 if len(w) > 20 else 1 for w in t.split()) for t in texts]

    chunks = chunk_text(text, count, max_tokens=40, overlap=0)
    assert all(count([c.text])[0] <= 40 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


HEADER = "From: ann@example.com\nTo: bob@example.com\nDate: 2026-12-07 09:00 UTC"


def test_a_header_block_is_never_a_chunk_of_its_own() -> None:
    """A mail's header block, with a first paragraph that does not fit beside it, used to be a
    passage alone: it won on the title (every chunk is embedded with it) and said nothing. It is
    followed in its chunk by the start of the paragraph, cut at a word."""
    body = words(55, "body")  # 72 tokens: with the header's 10, over the budget
    chunks = chunk_text(f"{HEADER}\n\n{body}", approx_tokens, max_tokens=60, overlap=8)
    assert chunks[0].text.startswith(HEADER + "\n\nbody0 body1 ")
    assert all(approx_tokens([c.text])[0] <= 60 for c in chunks)
    assert "body54" in chunks[-1].text and all("body" in c.text for c in chunks)


def test_a_heading_is_never_a_chunk_of_its_own() -> None:
    chunks = chunk_text("# Alpha\n\n" + words(55, "alpha"), approx_tokens, max_tokens=60, overlap=8)
    assert chunks[0].text.startswith("# Alpha\n\nalpha0 alpha1 ")
    assert all(approx_tokens([c.text])[0] <= 60 for c in chunks)


def test_a_header_block_left_at_a_chunks_end_opens_the_next_one() -> None:
    """A forwarded mail's header block after the note: with no room left for what it introduces,
    it moves to the next chunk, whole, before that message (no overlap between)."""
    note, forwarded = words(40, "note"), words(30, "fwd")
    head = "-- Forwarded by Ann on 12/13/2000 --\nFrom: Carla\nTo: Bob\nSubject: Refund"
    chunks = chunk_text(f"{note}\n\n{head}\n\n{forwarded}", approx_tokens, max_tokens=70, overlap=8)
    assert [c.text for c in chunks] == [note, f"{head}\n\n{forwarded}"]


def test_text_that_merely_has_colons_is_no_header_block() -> None:
    text = "Agenda: budget\nWe will go through the numbers line by line.\n\n" + words(55, "body")
    chunks = chunk_text(text, approx_tokens, max_tokens=60, overlap=0)
    assert chunks[0].text == "Agenda: budget\nWe will go through the numbers line by line."
