"""Project access (influence_core/access.py and the Project facade's opening paths): owner, members and roles,
one-line refusals, explicit creation, decided_by from the user who works in the project, reviewers' agreement."""

from __future__ import annotations

import json

import pytest

from influence_core.access import Access, read_members, valid_user
from influence_core.cli import build_parser, open_project
from influence_core.project import InfluenceError, Project
from influence_core.review import DecisionLog, default_user, reviewer_agreement

ALICE, BOB, CAROL, MALLORY = "alice@example.com", "bob@example.com", "carol@example.com", "mallory@example.com"


def signed_in(user: str, admins: tuple[str, ...] = ()) -> Access:
    return Access(user, signed_in=True, admins=admins)


@pytest.fixture
def alices(tmp_path) -> Project:
    """Alice's project on moons: Bob reviews, Carol views."""
    proj = Project.create("audit", signed_in(ALICE), tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.set_member(BOB, "reviewer")
    proj.set_member(CAROL, "viewer")
    return proj


def test_creating_a_project_records_its_owner_in_members_json(tmp_path):
    proj = Project.create("mine", signed_in(ALICE), tmp_path)
    assert json.loads((proj.folder / "members.json").read_text()) == {"owner": ALICE, "members": {}}
    assert proj.role == "owner"
    with pytest.raises(InfluenceError, match="exists already"):
        Project.create("mine", signed_in(BOB), tmp_path)


def test_opening_a_missing_project_by_name_makes_no_folder(tmp_path):
    with pytest.raises(InfluenceError, match="no project named 'ghost'"):
        Project.open_existing("ghost", signed_in(ALICE), tmp_path)
    assert not (tmp_path / "projects" / "ghost").exists()


def test_another_users_project_is_refused_in_one_line(alices):
    with pytest.raises(InfluenceError) as err:
        Project.open_existing("audit", signed_in(MALLORY), alices.root)
    assert str(err.value) == f"{MALLORY} has no access to project 'audit': ask its owner to add you"
    assert "\n" not in str(err.value)


def test_roles_decide_who_may_open_decide_and_manage(alices):
    root = alices.root
    assert [Project.open_existing("audit", signed_in(u), root).role for u in (ALICE, BOB, CAROL)] == \
        ["owner", "reviewer", "viewer"]
    bob = Project.open_existing("audit", signed_in(BOB.upper()), root)  # e-mail addresses compare case-insensitively
    bob.record([0, 1], "remove")
    with pytest.raises(InfluenceError, match="only the owner of project 'audit'"):
        bob.set_member(MALLORY, "reviewer")
    with pytest.raises(InfluenceError, match="only the owner of project 'audit'"):
        bob.rename("bobs")  # the library refuses too, not only the app's hidden button
    assert not (root / "projects" / "bobs").exists()
    carol = Project.open_existing("audit", signed_in(CAROL), root)
    with pytest.raises(InfluenceError, match="may view project 'audit' but not decide"):
        carol.record([2], "keep")
    with pytest.raises(InfluenceError, match="not decide"):
        carol.undo()
    assert set(alices.current_decisions()) == {0, 1}


def test_a_viewer_stores_no_upload_in_the_project(alices):
    """A viewer's upload was stored in the project's uploads (the Data page stages before "Use this upload"; a
    direct upload_dataset was refused only after the file was kept): refused first, nothing on disk."""
    carol = Project.open_existing("audit", signed_in(CAROL), alices.root)
    csv = ("a,b\n" + "\n".join(f"{i},{i % 2}" for i in range(60))).encode()
    for upload in (lambda: carol.stage_dataset_upload(csv, "c.csv", from_browser=True),
                   lambda: carol.upload_dataset(csv, "c.csv"), lambda: carol.upload_weights(b"x" * 64, "w.pt", "logreg")):
        with pytest.raises(InfluenceError, match="^you may view project 'audit' but not decide"):
            upload()
    assert not (alices.folder / "uploads").exists()
    with pytest.raises(InfluenceError, match="^you may view project 'audit' but not decide"):
        carol.find_data_issues()  # it wrote the project's data_issues.json (the job was refused, the call was not)
    assert not (alices.folder / "data_issues.json").exists()
    Project.open_existing("audit", signed_in(BOB), alices.root).stage_dataset_upload(csv, "b.csv", from_browser=True)
    assert [p.name for p in (alices.folder / "uploads").rglob("*.csv")] == ["b.csv"]


def test_decided_by_is_the_user_who_works_in_the_project(alices):
    Project.open_existing("audit", signed_in(BOB), alices.root).record([3], "relabel", 0)
    alices.record([4], "keep")
    decided = alices.current_decisions()
    assert (decided[3].decided_by, decided[4].decided_by) == (BOB, ALICE)
    assert list(alices.corrections().set_index("row")["decided_by"].loc[[3, 4]]) == [BOB, ALICE]


def test_the_library_and_cli_record_the_machine_user_or_user(tmp_path):
    proj = Project.open("local", tmp_path)
    proj.use_dataset("moons", seed=0)
    proj.record([0], "keep")
    assert proj.current_decisions()[0].decided_by == default_user() and proj.members().owner == default_user()
    args = build_parser().parse_args(["score", "--dataset", "moons", "--workspace", str(tmp_path), "--project",
                                      "by-cli", "--user", "dana"])
    cli = open_project(args)
    assert cli.user == "dana" and read_members(cli.folder).owner == "dana"
    cli.use_dataset("moons", seed=0)
    cli.record([1], "remove")
    assert cli.current_decisions()[1].decided_by == "dana"


def test_without_sign_in_the_machine_user_owns_every_project(alices):
    """The single-user tool (no [auth]): the local user opens and decides on anyone's project, as before."""
    local = Project.open("audit", alices.root)
    assert local.role == "owner"
    local.record([5], "remove")


def test_the_switcher_lists_only_projects_the_user_may_open(alices, tmp_path):
    Project.create("bobs", signed_in(BOB), tmp_path)
    Project.open("from-before-sign-in", tmp_path)  # owned by the OS user, not a signed-in identity
    (tmp_path / "projects" / "legacy").mkdir()  # no members.json at all
    names = ["audit", "bobs", "from-before-sign-in", "legacy"]
    projects = tmp_path / "projects"
    assert signed_in(CAROL).visible(projects, names) == ["audit"]
    assert signed_in(BOB).visible(projects, names) == ["audit", "bobs"]
    assert signed_in(MALLORY).visible(projects, names) == []
    assert signed_in("root@example.com", admins=("ROOT@example.com",)).visible(projects, names) == names
    assert Access.local().visible(projects, names) == names


def test_only_admins_create_projects_when_admins_are_configured(tmp_path):
    with pytest.raises(InfluenceError, match="only the server's administrators may create projects"):
        Project.create("x", signed_in(MALLORY, admins=(ALICE,)), tmp_path)
    assert not (tmp_path / "projects" / "x").exists()
    assert Project.create("x", signed_in(ALICE, admins=(ALICE,)), tmp_path).role == "owner"


def test_member_names_and_roles_are_checked(alices):
    for bad in ("", "two\nlines", "x" * 255):
        with pytest.raises(InfluenceError, match="one line of up to 254 characters"):
            valid_user(bad)
    with pytest.raises(InfluenceError, match="unknown role 'owner'"):
        alices.set_member(BOB, "owner")
    with pytest.raises(InfluenceError, match="owns this project"):
        alices.set_member(ALICE, "viewer")
    alices.set_member(CAROL, None)
    assert alices.members().roles == {BOB: "reviewer"}


def test_cohens_kappa_of_two_reviewers_matches_the_hand_computed_value(tmp_path):
    """a: keep remove remove relabel:1 keep; b: keep remove keep relabel:1 remove on the five samples both decided.
    Observed agreement 3/5; both give keep 2, remove 2, relabel:1 1, so chance agreement (4+4+1)/25 = 9/25;
    κ = (0.6 - 0.36) / (1 - 0.36) = 0.375."""
    log = DecisionLog(tmp_path / "d.sqlite")
    for user, decisions in (("a", [("keep", 0), ("remove", 1), ("remove", 2), ("relabel", 3), ("keep", 4), ("keep", 9)]),
                            ("b", [("keep", 0), ("remove", 1), ("keep", 2), ("relabel", 3), ("remove", 4)])):
        for action, sample in decisions:
            log.record("s", [sample], action, 1 if action == "relabel" else None, user=user)
    log.record("s", [2], "keep", user="a", session="a1")
    log.undo("s", session="a1")  # undone: a's decision on 2 stays "remove"
    by_reviewer = log.by_reviewer("s")
    assert by_reviewer["a"][3] == "relabel:1" and by_reviewer["a"][2] == "remove"
    [pair] = reviewer_agreement(by_reviewer)
    assert pair["reviewers"] == ("a", "b") and pair["samples"] == 5 and pair["agreement"] == pytest.approx(0.6)
    assert pair["kappa"] == pytest.approx(0.375, abs=1e-12)
    assert reviewer_agreement({"a": {0: "keep"}, "b": {0: "keep"}})[0]["kappa"] is None  # one category: κ is 0/0


def test_project_reviewers_counts_each_reviewers_own_decisions(alices):
    alices.record([0, 1], "remove")
    Project.open_existing("audit", signed_in(BOB), alices.root).record([1, 2], "keep")
    summary = alices.reviewers()
    assert summary["counts"] == {ALICE: {"keep": 0, "remove": 2, "relabel": 0},
                                 BOB: {"keep": 2, "remove": 0, "relabel": 0}}
    assert [(p["reviewers"], p["samples"], p["agreement"]) for p in summary["agreement"]] == [((ALICE, BOB), 1, 0.0)]


def test_only_the_owner_deletes_a_project(alices):
    bob = Project.open_existing("audit", signed_in(BOB), alices.root)
    with pytest.raises(InfluenceError, match="only the owner of project 'audit' may do that"):
        bob.delete()
    assert alices.folder.is_dir()
    alices.delete()
    assert not alices.folder.exists()


def test_a_damaged_member_list_is_a_one_line_error(alices):
    (alices.folder / "members.json").write_text("[]")
    with pytest.raises(InfluenceError, match="member list of project 'audit' is not an owner and a table"):
        Project.open_existing("audit", signed_in(ALICE), alices.root)


def test_the_machines_user_opening_an_unused_name_gets_one_line_and_no_folder_until_create(tmp_path):
    local = Access.local("me")
    with pytest.raises(InfluenceError, match=r"^no project named 'typo'$"):
        Project.open_existing("typo", local, tmp_path)
    assert not (tmp_path / "projects" / "typo").exists() and not Project.exists("typo", tmp_path)
    made = Project.create("typo", local, tmp_path)
    assert (tmp_path / "projects" / "typo").is_dir() and made.role == "owner" and made.members().owner == "me"
