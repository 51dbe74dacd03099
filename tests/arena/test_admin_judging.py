"""The admin's judged-run pages: a prompt set imported from a file, a run of every enabled model
started, its progress shown, resumed and cancelled; only for staff."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from arena.models import ChatModel, JudgeGame, JudgeRun, Prompt, PromptSet
from arena.verdicts import DEFAULT_JUDGE_PROMPT
from tests.arena.judging_helpers import prompt_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def three():
    made = [ChatModel.objects.create(name=n, endpoint_url=f"http://127.0.0.1:9/{n}", template="zephyr")
            for n in ("c1", "c2", "c3")]
    ChatModel.objects.create(name="off", endpoint_url="http://127.0.0.1:9/off", template="zephyr", enabled=False)
    return made


def test_a_prompt_set_is_imported_from_a_file_and_listed_with_its_size(admin_client):
    upload = SimpleUploadedFile("p.jsonl", b'{"turns": ["a", "b"]}\n{"prompt": "c", "category": "x"}\n')
    answer = admin_client.post("/admin/arena/promptset/add/", {"name": "mine", "file": upload})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert Prompt.objects.filter(prompt_set__name="mine").count() == 2
    listing = admin_client.get("/admin/arena/promptset/").content.decode()
    assert "mine" in listing and '<td class="field-size">2</td>' in listing


def test_a_bad_prompt_file_is_refused_with_its_line_and_imports_nothing(admin_client):
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "fine"}\n{"turns": []}\n')
    answer = admin_client.post("/admin/arena/promptset/add/", {"name": "bad", "file": upload})
    assert answer.status_code == 200 and "line 2: give" in answer.content.decode()
    assert not PromptSet.objects.exists()


def test_a_run_of_every_enabled_model_is_started_and_its_progress_shown(admin_client, three):
    prompts = prompt_set(prompts=["One?", "Two?"])
    judge = ChatModel.objects.get(name="off")  # any registered model may judge
    form = admin_client.get("/admin/arena/judgerun/add/").content.decode()
    assert "[[A]]" in form  # the default judge prompt, editable
    answer = admin_client.post("/admin/arena/judgerun/add/", {
        "prompt_set": prompts.id, "judge": judge.id, "pairs": "all", "judge_prompt": DEFAULT_JUDGE_PROMPT,
        "concurrency": 4,
    })
    assert answer.status_code == 302, answer.content.decode()[:3000]
    run = JudgeRun.objects.get()
    assert set(run.contestants.values_list("name", flat=True)) == {"c1", "c2", "c3"}
    assert JudgeGame.objects.filter(run=run).count() == 2 * 3 * 2
    listing = admin_client.get("/admin/arena/judgerun/").content.decode()
    assert "0/18 done" in listing and "?judge=model:off" in listing
    detail = admin_client.get(f"/admin/arena/judgerun/{run.id}/change/").content.decode()
    assert "0/18 done" in detail and "c1, c2, c3" in detail

    admin_client.post("/admin/arena/judgerun/", {"action": "cancel", "_selected_action": [run.id]})
    assert JudgeRun.objects.get().status == JudgeRun.Status.CANCELLED
    admin_client.post("/admin/arena/judgerun/", {"action": "resume", "_selected_action": [run.id]})
    assert JudgeRun.objects.get().status == JudgeRun.Status.RUNNING


def test_a_bad_judge_prompt_or_too_few_models_is_refused(admin_client, three):
    prompts = prompt_set(prompts=["One?"])
    answer = admin_client.post("/admin/arena/judgerun/add/", {
        "prompt_set": prompts.id, "judge": three[0].id, "pairs": "all", "judge_prompt": "Judge {answer_a}.",
        "concurrency": 4, "contestants": [three[0].id],
    }).content.decode()
    assert "must contain {question}" in answer and "must contain {answer_b}" in answer
    assert "at least two models" in answer
    assert not JudgeRun.objects.exists()


def test_people_who_are_not_staff_get_the_login_page(client, three):
    assert client.get("/admin/arena/judgerun/add/").status_code == 302
    assert client.get("/admin/arena/promptset/").status_code == 302
