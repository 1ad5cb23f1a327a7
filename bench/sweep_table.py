"""The sweep's table: reads the `bench-train` and `bench-python` lines bench/sweep.sh collected
and writes them as JSON (one record per case) and as a Markdown table.

    python3 bench/sweep_table.py LINES --json sweep.json --markdown sweep.md
"""
import argparse
import json


def parse_line(line):
    """`bench-train key=value ...` -> (kind, {key: value}) with numbers as floats."""
    kind, *pairs = line.split()
    record = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            record[key] = float(value)
        except ValueError:
            record[key] = value
    return kind, record


def read_cases(path):
    cases = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("bench-"):
                continue
            kind, record = parse_line(line)
            name = record.pop("case")
            case = cases.setdefault(name, {"case": name})
            case["rbsde" if kind == "bench-train" else "python"] = record
    for case in cases.values():
        missing = {"rbsde", "python"} - case.keys()
        if missing:
            raise SystemExit(f"sweep_table: case {case['case']} has no {' or '.join(missing)} line")
        case["python_over_rbsde"] = case["python"]["s_per_iter"] / case["rbsde"]["s_per_iter"]
    return list(cases.values())


PHASES = ("noise", "path_kernel", "forward", "target", "backward", "allreduce", "optimizer")


def markdown(cases):
    head = ("| case | d | width | M | rbsde s/it | GFLOP/s | peak | fraction | Python s/it "
            "| Python / rbsde | sampling path-steps/s | sampling fraction | phases: "
            + ", ".join(PHASES) + " |")
    rows = [head, "|" + "---|" * 13]
    for c in cases:
        r, p = c["rbsde"], c["python"]
        phases = " / ".join(f"{r['share_' + name]:.2f}" for name in PHASES)
        rows.append(
            f"| {c['case']} | {r['d']:.0f} | {r['width']:.0f} | {r['paths']:.0f} "
            f"| {r['s_per_iter']:.4g} | {r['gflops']:.1f} | {r['sgemm_peak_gflops']:.1f} "
            f"| {r['peak_fraction']:.2f} | {p['s_per_iter']:.4g} | {c['python_over_rbsde']:.2f} "
            f"| {r['sample_path_steps_per_s']:.3g} | {r['sample_peak_fraction']:.2f} | {phases} |")
    return "\n".join(rows) + "\n"


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("lines")
    a.add_argument("--json", required=True)
    a.add_argument("--markdown", required=True)
    args = a.parse_args()
    cases = read_cases(args.lines)
    if not cases:
        raise SystemExit(f"sweep_table: no bench lines in {args.lines}")
    with open(args.json, "w") as f:
        json.dump(cases, f, indent=1)
    with open(args.markdown, "w") as f:
        f.write(markdown(cases))


if __name__ == "__main__":
    main()
