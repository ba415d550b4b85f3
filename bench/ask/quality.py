"""A quality check anyone can rerun: every question of bench/ask/questions.json asked through the service
(real API server and worker, the configured model; the default: SmolLM2), scored strictly: the answer
contains the expected string (case and whitespace aside) AND one of its citations names a page that holds
that string. Also reported: answer right, citation wrong or missing; and, for the planted facts, the depth.

    DOCPROC_TEST_CORPUS=/work/shared/corpus/pdf python bench/ask/quality.py [--model smollm2] [--limit N]

The retrieval half alone: bench/ask/retrieval.py.
"""

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ask import service  # noqa: E402
from bench.ask.dataset import PLANTED, QUESTIONS, REPO, holds, pages_of, planted_text, questions  # noqa: E402
from bench.quality.documents import CORPUS  # noqa: E402


def source_bytes(file: str, planted_chars: int) -> tuple[str, bytes]:
    if file == PLANTED:
        return "planted.txt", planted_text(planted_chars).encode()
    if file.startswith("sample:"):
        name = file.removeprefix("sample:")
        return name, (REPO / "docproc" / "samples" / name).read_bytes()
    return Path(file).name, (CORPUS / file).read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2", help="DOCPROC_MODEL for the worker")
    parser.add_argument("--planted-chars", type=int, default=400_000, help="size of the planted-facts text")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--method", choices=["auto", "extractive", "abstractive"], default="auto")
    parser.add_argument("--json", type=Path, help="write every answer here")
    args = parser.parse_args()
    items = questions(args.planted_chars)[: args.limit]
    depths = {item["answer"]: item["depth"] for item in json.loads(QUESTIONS.read_text())["planted"]}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        live = service.start(Path(workdir), DOCPROC_MODEL=args.model)
        try:
            with live.client() as client:
                documents: dict[str, str] = {}
                for item in items:
                    if item.file not in documents:
                        documents[item.file] = service.upload(
                            client, *source_bytes(item.file, args.planted_chars)
                        )["id"]
                    answer = service.ask(live, client, documents[item.file], item.question, args.method)
                    pages = {page.number: page.text for page in pages_of(item.file, args.planted_chars)}
                    cited = [citation["page"] for citation in answer.citations]
                    right = holds(answer.answer, item.answer)
                    cited_right = any(holds(pages.get(page, ""), item.answer) for page in cited)
                    rows.append((item, answer, right, cited_right, cited))
                    mark = "ok" if right and cited_right else "NO"
                    print(f"{mark} {item.question} -> {answer.answer!r} {cited}")
        finally:
            live.stop()
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for item, _, right, cited_right, _ in rows:
        group = (
            "planted facts"
            if item.file == PLANTED
            else ("German (GeoTopo)" if "GeoTopo" in item.file else "English")
        )
        groups[group].append((right, cited_right))
        groups["all"].append((right, cited_right))
    print(
        f"\nModel {args.model}, method {args.method}; score: the answer contains the expected string and a "
        "cited page holds it.\n"
    )
    print("| questions | n | score | answer right | right but cited page wrong or none |")
    print("|---|---:|---:|---:|---:|")
    for name, marks in groups.items():
        n = len(marks)
        both = sum(r and c for r, c in marks)
        right = sum(r for r, _ in marks)
        print(f"| {name} | {n} | {both / n:.0%} | {right / n:.0%} | {(right - both) / n:.0%} |")
    planted_rows = [
        (depths[item.answer], right and cited_right)
        for item, _, right, cited_right, _ in rows
        if item.file == PLANTED
    ]
    if planted_rows:
        print("\n| planted fact depth | found and cited |\n|---:|---|")
        for depth, ok in sorted(planted_rows):
            print(f"| {depth:.0%} | {'yes' if ok else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps([
            {"file": item.file, "question": item.question, "expected": item.answer, "answer": answer.answer,
             "citations": answer.citations, "usage": answer.usage, "right": right, "cited_right": cited_right}
            for item, answer, right, cited_right, _ in rows
        ], indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
