"""The syllabus model: the committed learning path, and every error the loader reports (file and field)."""

import copy
from pathlib import Path

import pytest
import yaml

from dslearn.course.syllabus import (
    LEVEL_ORDER,
    SyllabusError,
    find_course_root,
    load_syllabus,
    parse_syllabus,
)

ROOT = find_course_root()
SEED_PATH = {  # the path the issue plans, level by level
    "beginner": ["00-welcome", "01-tensors-autograd", "02-mnist-classification", "03-data-debugging-profiling"],
    "intermediate": ["10-jit-graph-optimization", "11-cuda-kernels", "12-memory-and-precision", "13-custom-operators"],
    "advanced": ["20-quantization", "21-distributed-training", "22-deployment"],
    "expert": ["30-neural-architecture-search", "31-continual-learning", "32-differential-privacy"],
}


def minimal():
    return {"schema": 1, "title": "Demo", "budget": {"seconds": 120, "memory_mb": 2048}, "levels": [
        {"id": "beginner", "title": "Beginner", "goal": "Start.", "units": [
            {"id": "basics", "title": "Basics", "labs": [
                {"id": "00-welcome", "title": "Welcome", "status": "available", "hours": 2,
                 "prerequisites": [], "objectives": ["Say hello."]},
                {"id": "01-next", "title": "Next", "status": "coming", "hours": 3,
                 "prerequisites": ["00-welcome"], "objectives": ["Go on."]}]}]}]}


def test_committed_syllabus_plans_the_whole_path_in_order():
    syllabus = load_syllabus(ROOT)
    assert [level.id for level in syllabus.levels] == list(LEVEL_ORDER)
    for level in syllabus.levels:
        assert [lab.id for unit in level.units for lab in unit.labs] == SEED_PATH[level.id]


def test_beginner_level_is_about_twenty_hours_as_in_the_seed():
    assert load_syllabus(ROOT).hours("beginner") == pytest.approx(20, abs=2)


def test_available_labs_have_their_notebook_and_coming_labs_do_not():
    syllabus = load_syllabus(ROOT)
    assert "00-welcome" in [lab.id for lab in syllabus.available_labs()]
    for lab in syllabus.labs():
        assert (ROOT / lab.notebook).is_file() == lab.available, lab.id


def test_custom_operator_lab_is_in_the_intermediate_level_as_the_seed_says():
    assert load_syllabus(ROOT).lab("13-custom-operators").level == "intermediate"


def test_prerequisites_point_backwards_so_the_path_has_no_cycle():
    seen = set()
    for lab in load_syllabus(ROOT).labs():
        assert set(lab.prerequisites) <= seen, lab.id
        seen.add(lab.id)


def test_unknown_lab_error_lists_the_labs_that_exist():
    with pytest.raises(KeyError, match="00-welcome"):
        load_syllabus(ROOT).lab("99-nope")


def test_minimal_syllabus_parses():
    syllabus = parse_syllabus(minimal())
    assert [lab.id for lab in syllabus.labs()] == ["00-welcome", "01-next"]
    assert [lab.id for lab in syllabus.available_labs()] == ["00-welcome"]
    assert syllabus.lab("01-next").notebook == Path("labs/01-next/01-next.ipynb")
    assert syllabus.hours("beginner") == 5.0


def _edit(path, value):
    data = minimal()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


LAB = ("levels", 0, "units", 0, "labs", 0)
CASES = [
    (("schema",), 2, "schema: expected 1"),
    (("title",), KeyError, "title: missing"),
    (("colour",), "blue", "colour: unknown field"),
    (("budget", "seconds"), 0, "budget.seconds: expected a positive number"),
    (("levels",), [], "levels: expected at least one entry"),
    (("levels",), "beginner", "levels: expected a list"),
    (("levels", 0, "id"), "novice", r"levels\[0\].id: expected one of beginner"),
    (("levels", 0, "units", 0, "id"), "Basics!", r"levels\[0\].units\[0\].id: expected a lower-case slug"),
    (LAB + ("id",), "welcome", r"labs\[0\].id: expected two digits"),
    (LAB + ("status",), "draft", r"labs\[0\].status: expected one of available, coming"),
    (LAB + ("hours",), "two", r"labs\[0\].hours: expected a positive number, got 'two'"),
    (LAB + ("hours",), True, r"labs\[0\].hours: expected a positive number"),
    (LAB + ("objectives",), [], r"labs\[0\].objectives: expected at least one entry"),
    (LAB + ("objectives",), [""], r"labs\[0\].objectives\[0\]: expected a non-empty string"),
    (LAB + ("title",), KeyError, r"labs\[0\].title: missing"),
    (LAB + ("prerequisites",), ["01-next"], r"labs\[0\].prerequisites\[0\]: '01-next' is not a lab that comes earlier"),
]


@pytest.mark.parametrize("path, value, message", CASES, ids=[".".join(map(str, c[0])) for c in CASES])
def test_each_mistake_is_reported_with_source_and_field(path, value, message):
    with pytest.raises(SyllabusError, match=f"^my.yml: .*{message}"):
        parse_syllabus(_edit(path, value), source="my.yml")


def test_duplicate_lab_ids_name_the_first_definition():
    data = minimal()
    data["levels"][0]["units"][0]["labs"][1]["id"] = "00-welcome"
    with pytest.raises(SyllabusError, match=r"labs\[1\].id: lab '00-welcome' is already defined at .*labs\[0\]"):
        parse_syllabus(data)


def test_duplicate_unit_ids_are_refused():
    data = minimal()
    unit = copy.deepcopy(data["levels"][0]["units"][0])
    unit["labs"] = [dict(unit["labs"][0], id="02-other")]
    data["levels"][0]["units"].append(unit)
    with pytest.raises(SyllabusError, match=r"units\[1\].id: unit 'basics' appears twice"):
        parse_syllabus(data)


def test_levels_out_of_order_are_refused():
    data = minimal()
    expert = copy.deepcopy(data["levels"][0])
    expert["id"] = "expert"
    expert["units"][0]["labs"] = [dict(expert["units"][0]["labs"][0], id="30-x", prerequisites=[])]
    data["levels"].insert(0, expert)
    with pytest.raises(SyllabusError, match="levels: levels must be distinct and in the order"):
        parse_syllabus(data)


def test_top_level_that_is_not_a_mapping_is_refused():
    with pytest.raises(SyllabusError, match="expected a mapping, got list"):
        parse_syllabus([1, 2])


def test_load_reports_invalid_yaml_with_the_file(tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "syllabus.yml").write_text("levels: [unclosed\n")
    with pytest.raises(SyllabusError, match=r"syllabus.yml: not valid YAML"):
        load_syllabus(tmp_path)


def test_load_reads_a_course_in_another_folder(tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "syllabus.yml").write_text(yaml.safe_dump(minimal()))
    syllabus = load_syllabus(tmp_path)
    assert syllabus.root == tmp_path and syllabus.title == "Demo"


def test_course_root_is_found_from_a_subfolder_and_falls_back_to_the_checkout(tmp_path):
    assert find_course_root(ROOT / "labs" / "00-welcome") == ROOT
    assert find_course_root(tmp_path) == ROOT  # no course above tmp_path: the checkout dslearn came from
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "syllabus.yml").write_text(yaml.safe_dump(minimal()))
    assert find_course_root(tmp_path / "course") == tmp_path
