"""`python -m influence_core experiment`: prints the table, writes JSON, one-line errors."""

import json

from influence_core.cli import main


def test_experiment_command_writes_json_and_prints_table(tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = main(["experiment", "--dataset", "blobs", "--model", "logreg", "--methods", "ip,ip_ensemble", "--seeds", "1",
               "--attacks", "1", "--action", "reweight", "--temperature", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| full |" in text and "| IP Ensemble |" in text
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"full", "random", "ip", "ip_ensemble"}
    assert data["settings"]["action"] == "reweight" and data["settings"]["temperature"] == 2.0
    assert (tmp_path / "results.runs.jsonl").exists()


def test_experiment_errors_are_one_line(capsys):
    assert main(["experiment", "--dataset", "blobs", "--methods", "ip,nosuch", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown method nosuch") and "\n" not in err
    assert main(["experiment", "--dataset", "blobs", "--set", "ip_ensemble.bogus=1", "--methods", "ip_ensemble"]) == 2
    assert "bogus" in capsys.readouterr().err
