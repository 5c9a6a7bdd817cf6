"""Sentences of the demo corpus: templates filled from small Mandarin and English word lists.

The vocabulary is kept compact (a few hundred Mandarin characters, under two hundred
English words) and the sentences short, so that a small Conformer learns the corpus in
minutes on a CPU. Code-switched lines put English terms in Mandarin sentences, as in
FunASR's example "所有只要处理 data 不管你是做 machine learning 做 deep learning".
"""

from __future__ import annotations

import random

from engine.data.tokenizer import is_cjk, split_units

ZH_SUBJECTS = ["我", "你", "他", "她", "我们", "你们", "他们", "大家", "老师", "学生", "同事", "朋友",
               "经理", "客户", "小王", "小李"]
ZH_TIMES = ["今天", "明天", "昨天", "现在", "上午", "下午", "晚上", "周末", "刚才", "每天", "下周", "早上"]
ZH_ADVERBS = ["已经", "一起", "马上", "正在", "还要", "不想", "可以", "应该", "需要", "都会", "经常", "先"]
ZH_VERBS = ["处理", "学习", "准备", "检查", "完成", "讨论", "打开", "关闭", "下载", "上传", "训练", "测试",
            "整理", "分析", "修改", "发送", "保存", "记录", "安排", "解决"]
ZH_OBJECTS = ["数据", "模型", "文件", "报告", "代码", "问题", "项目", "音频", "文本", "系统", "结果", "任务",
              "会议", "计划", "邮件", "资料", "作业", "表格", "方案", "材料"]
ZH_PLACES = ["在家", "在公司", "在学校", "在北京", "在上海", "在办公室", "在图书馆", "在路上"]
ZH_ADJECTIVES = ["很好", "不错", "太难了", "很简单", "非常重要", "有意思", "很清楚", "比较慢", "特别快",
                 "没问题", "还可以", "很方便"]
ZH_NUMBERS = ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十"]
ZH_MEASURES = ["个", "份", "次", "天", "本"]

EN_SUBJECTS = ["i", "you", "we", "they", "she", "he", "the team", "my friend", "the teacher", "our manager",
               "the students", "everyone"]
EN_TIMES = ["today", "tomorrow", "now", "tonight", "this morning", "next week", "yesterday", "every day",
            "after lunch", "on monday"]
EN_ADVERBS = ["really", "always", "often", "never", "quickly", "carefully", "usually", "already", "also",
              "finally"]
EN_VERBS = ["like", "need", "check", "open", "send", "train", "test", "read", "write", "find", "fix", "share",
            "build", "save", "download", "update", "review", "print", "change", "start"]
EN_OBJECTS = ["the data", "the model", "the file", "the report", "the code", "the email", "the project",
              "the audio", "the results", "the plan", "this problem", "the slides", "the paper", "the list",
              "the music", "the photos", "a new book", "the program", "the message", "the website"]
EN_ADJECTIVES = ["good", "simple", "important", "difficult", "ready", "great", "fast", "slow", "easy", "useful",
                 "clear", "wrong", "right", "new", "small"]
EN_PLACES = ["at home", "at work", "at school", "in the office", "in the city", "on the train"]

# English terms that Mandarin speakers leave untranslated.
MIX_TERMS = ["data", "model", "machine learning", "deep learning", "python", "email", "meeting", "project",
             "paper", "server", "demo", "team", "deadline", "code", "online", "office", "report", "app"]


def _zh(rng: random.Random) -> str:
    c = rng.choice
    templates = [
        lambda: f"{c(ZH_SUBJECTS)}{c(ZH_TIMES)}{c(ZH_ADVERBS)}{c(ZH_VERBS)}{c(ZH_OBJECTS)}",
        lambda: f"{c(ZH_TIMES)}的{c(ZH_OBJECTS)}{c(ZH_ADJECTIVES)}",
        lambda: f"{c(ZH_SUBJECTS)}{c(ZH_PLACES)}{c(ZH_VERBS)}{c(ZH_OBJECTS)}",
        lambda: f"{c(ZH_SUBJECTS)}觉得这个{c(ZH_OBJECTS)}{c(ZH_ADJECTIVES)}",
        lambda: f"请{c(ZH_SUBJECTS)}{c(ZH_VERBS)}一下{c(ZH_OBJECTS)}",
        lambda: f"{c(ZH_SUBJECTS)}有{c(ZH_NUMBERS)}{c(ZH_MEASURES)}{c(ZH_OBJECTS)}要{c(ZH_VERBS)}",
        lambda: f"为什么{c(ZH_OBJECTS)}还没有{c(ZH_VERBS)}",
    ]
    return c(templates)()


def _en(rng: random.Random) -> str:
    c = rng.choice
    templates = [
        lambda: f"{c(EN_SUBJECTS)} {c(EN_ADVERBS)} {c(EN_VERBS)} {c(EN_OBJECTS)}",
        lambda: f"{c(EN_OBJECTS)} is {c(EN_ADJECTIVES)} {c(EN_TIMES)}",
        lambda: f"can {c(EN_SUBJECTS)} {c(EN_VERBS)} {c(EN_OBJECTS)}",
        lambda: f"please {c(EN_VERBS)} {c(EN_OBJECTS)} {c(EN_TIMES)}",
        lambda: f"{c(EN_SUBJECTS)} {c(EN_VERBS)} {c(EN_OBJECTS)} {c(EN_PLACES)}",
    ]
    return c(templates)()


def _mixed(rng: random.Random) -> str:
    c = rng.choice
    templates = [
        lambda: f"所有只要{c(ZH_VERBS)} {c(MIX_TERMS)} 不管你是做 {c(MIX_TERMS)}",
        lambda: "所有只要处理 data 不管你是做 machine learning 做 deep learning",
        lambda: f"{c(ZH_SUBJECTS)}{c(ZH_TIMES)}要{c(ZH_VERBS)} {c(MIX_TERMS)}",
        lambda: f"这个 {c(MIX_TERMS)} {c(ZH_ADJECTIVES)}",
        lambda: f"请把 {c(MIX_TERMS)} 发给{c(ZH_SUBJECTS)}",
        lambda: f"{c(ZH_SUBJECTS)}在做 {c(MIX_TERMS)} 的{c(ZH_OBJECTS)}",
    ]
    return c(templates)()


# Shares of each kind of sentence.
KINDS = (("zh", 0.45, _zh), ("en", 0.30, _en), ("mixed", 0.25, _mixed))


def make_sentence(rng: random.Random) -> tuple[str, str]:
    """(kind, text) with kind in zh, en, mixed; English in lower case, spaces around English words."""
    pick = rng.random()
    for kind, share, make in KINDS:
        if pick < share:
            return kind, make(rng)
        pick -= share
    kind, _, make = KINDS[-1]
    return kind, make(rng)


def script_segments(text: str) -> list[tuple[str, str]]:
    """Split a sentence into runs for the synthesiser: [("zh", "所有只要处理"), ("en", "data"), ...]."""
    segments: list[tuple[str, list[str]]] = []
    for unit in split_units(text):
        language = "zh" if is_cjk(unit[0]) else "en"
        if not segments or segments[-1][0] != language:
            segments.append((language, []))
        segments[-1][1].append(unit)
    return [(language, ("" if language == "zh" else " ").join(units)) for language, units in segments]
