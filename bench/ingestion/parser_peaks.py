"""Peak memory and time of one PDF parser process per corpus file: the figures the parser limits in
docproc.settings are chosen from (parser_memory_limit_bytes, parse_timeout_s, max_inflated_pdf_bytes).

Each file is read by the lead job alone (one worker) in a fresh process, as a parser child would; VmPeak is
the address space RLIMIT_AS limits, VmHWM the resident peak.

    python bench/ingestion/parser_peaks.py [--corpus DIR]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"
CHILD = """
import sys, time
from pathlib import Path
from docproc.ingestion import IngestionError, pdf_worker
path = Path(sys.argv[1])
started = time.monotonic()
try:
    pdf_worker.lead_job(lambda message: None, path, None, 5000, 50_000_000, 1, 1 << 40, 1 << 40)
    outcome = "ok"
except IngestionError as error:
    outcome = error.code
seconds = time.monotonic() - started
status = dict(line.split(":") for line in open("/proc/self/status") if line.startswith(("VmPeak", "VmHWM")))
print(outcome, f"{seconds:.2f}", *(int(status[key].split()[0]) >> 10 for key in ("VmPeak", "VmHWM")))
"""


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    corpus = parser.parse_args().corpus
    print(f"{'file':<68} {'outcome':<20} {'seconds':>7} {'VmPeak MiB':>10} {'VmHWM MiB':>9}")
    for entry in json.loads((corpus / "files.json").read_text())["data"]:
        path = corpus / entry["path"]
        if not path.exists():
            continue
        result = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True)
        outcome, seconds, peak, resident = result.stdout.split()
        print(f"{entry['path']:<68} {outcome:<20} {seconds:>7} {peak:>10} {resident:>9}", flush=True)


if __name__ == "__main__":
    main()
