#!/usr/bin/env python3
"""Tests of bench/run.py: results.json validates against bench/results.schema.json, statistics
are right, and a benchmark that cannot take its measurement fails the run instead of reporting a
zero. Runs the real runner on stand-in steps (--step), so no VM is needed; ctest runs it."""

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "run.py")
with open(os.path.join(HERE, "results.schema.json")) as f:
    SCHEMA = json.load(f)


def validate(document):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(document)


def emit(*figures):
    """A shell command printing BENCH lines (and some commentary)."""
    lines = ["echo commentary"] + [f"echo 'BENCH {json.dumps(f)}'" for f in figures]
    return "; ".join(lines)


class Runner(unittest.TestCase):
    def run_bench(self, *steps):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "results.json")
            args = [sys.executable, RUNNER, "--build", tmp, "--out", out, "--only", ""]
            for name, command in steps:
                args += ["--step", f"{name}={command}"]
            proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            with open(out) as f:
                return proc.returncode, json.load(f), proc.stdout, proc.stderr

    def test_results_validate_and_carry_statistics(self):
        code, doc, out, _ = self.run_bench(
            ("fake", emit({"name": "fake.latency", "unit": "ms", "samples": [5, 1, 3, 2, 4],
                           "better": "lower", "what": "a stand-in"},
                          {"name": "fake.rate", "unit": "MiB/s", "samples": [10, 30],
                           "better": "higher"})))
        self.assertEqual(code, 0)
        validate(doc)
        by_name = {r["name"]: r for r in doc["results"]}
        lat = by_name["fake.latency"]
        self.assertEqual((lat["median"], lat["min"], lat["max"], lat["p99"]), (3, 1, 5, 5))
        self.assertEqual(lat["samples"], [5, 1, 3, 2, 4])
        self.assertEqual(by_name["fake.rate"]["median"], 20)
        self.assertEqual(doc["failures"], [])
        self.assertRegex(doc["git_revision"], "^([0-9a-f]{40}|unknown)$")
        self.assertIn("fake.latency", out)  # the table

    def test_a_failing_step_fails_the_run_and_is_recorded(self):
        code, doc, _, err = self.run_bench(
            ("good", emit({"name": "good.x", "unit": "ms", "samples": [1]})),
            ("broken", emit({"name": "broken.x", "unit": "ms", "samples": [1]}) + "; exit 3"))
        self.assertNotEqual(code, 0)
        validate(doc)
        self.assertEqual([f["step"] for f in doc["failures"]], ["broken"])
        self.assertIn("status 3", doc["failures"][0]["error"])
        self.assertEqual([r["name"] for r in doc["results"]], ["good.x"])
        self.assertIn("broken", err)

    def test_no_measurement_is_a_failure_not_a_zero(self):
        for name, command in (
                ("silent", "echo nothing measured"),
                ("empty", emit({"name": "empty.x", "unit": "ms", "samples": []})),
                ("nan", "echo 'BENCH {\"name\": \"nan.x\", \"unit\": \"ms\", \"samples\": [NaN]}'"),
                ("unitless", emit({"name": "unitless.x", "samples": [1]})),
                ("garbled", "echo 'BENCH {not json'"),
                ("notobject", "echo 'BENCH [1, 2]'"),
                ("badname", emit({"name": "Nodots", "unit": "ms", "samples": [1]}))):
            with self.subTest(step=name):
                code, doc, _, _ = self.run_bench((name, command))
                self.assertNotEqual(code, 0)
                validate(doc)
                self.assertEqual(doc["results"], [])
                self.assertEqual(doc["failures"][0]["step"], name)

    def test_p99_is_the_nearest_rank(self):
        code, doc, _, _ = self.run_bench(
            ("many", emit({"name": "many.x", "unit": "ms", "samples": list(range(1, 201))})))
        self.assertEqual(code, 0)
        r = doc["results"][0]
        self.assertEqual((r["median"], r["p99"], r["max"]), (100.5, 198, 200))

    def test_a_hung_step_is_killed_at_its_timeout(self):
        sys.path.insert(0, HERE)
        import run
        start = time.monotonic()
        with self.assertRaises(run.StepFailed):
            run.run("sleep 30", timeout=1, echo=False)
        self.assertLess(time.monotonic() - start, 10)

    def test_schema_rejects_incomplete_results(self):
        code, doc, _, _ = self.run_bench(
            ("fake", emit({"name": "fake.x", "unit": "ms", "samples": [1, 2]})))
        self.assertEqual(code, 0)
        validate(doc)
        broken = []
        for key in ("median", "samples", "unit"):
            d = copy.deepcopy(doc)
            del d["results"][0][key]
            broken.append(d)
        d = copy.deepcopy(doc)
        d["results"][0]["samples"] = []
        broken.append(d)
        d = copy.deepcopy(doc)
        del d["machine"]
        broken.append(d)
        d = copy.deepcopy(doc)
        d["results"][0]["median"] = "3 ms"
        broken.append(d)
        for d in broken:
            with self.assertRaises(jsonschema.ValidationError):
                validate(d)

    def test_unknown_step_is_a_usage_error(self):
        proc = subprocess.run([sys.executable, RUNNER, "--only", "nosuchstep"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("unknown step 'nosuchstep'", proc.stderr)


if __name__ == "__main__":
    unittest.main()
