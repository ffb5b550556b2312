"""Word lists behind the name recognizers and surrogates (written here, or taken from Faker's locale data,
which is installed with the package: nothing is downloaded).

The Chinese surname list is the common ones only: Faker's 399 include characters that are far more often
ordinary words (和, 平, 国, 明, 海 ...), which would turn 和平 or 明天 into names.
"""

from __future__ import annotations

import importlib

from faker.providers.person.zh_CN import Provider as _ZhPerson

ZH_SURNAMES: frozenset[str] = frozenset(
    "王李张刘陈杨黄吴赵周徐孙马朱胡郭何罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘董袁余叶蒋杜苏魏程吕丁沈任姚"
    "卢傅钟姜崔谭廖范汪陆贾韦夏邱侯邹熊孟秦薛尹段雷黎史陶贺顾毛郝龚邵钱严赖覃洪莫孔汤施牛樊葛邢"
    "乔伍庞颜倪庄聂章鲁岳翟殷詹欧耿焦俞祝柯纪童凌毕裴霍涂苗翁冉骆蓝辛靳管柴鲍喻祁蒲滕屈饶牟艾"
) | frozenset(("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "令狐", "慕容", "尉迟", "公孙", "夏侯"))

# Characters common in given names (beyond Faker's 131 given names), none of them a frequent function word.
ZH_GIVEN: frozenset[str] = frozenset(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉晶波宇浩凯健俊帆帅旭宁龙"
    "欢佳阳亮成峰晨瑞志兵东博坤岩楠丹莉婷凤颖雪慧倩琴洁柳淑珍梅荣莹琳欣香芝瑜璐兰怡思嘉子涵梓轩"
    "睿哲昊然泽诗琪雨萱欣妍悦可馨晓梦婧雯璇蕾琦薇彤露瑶晗宸皓铭鑫磊峻毅诚锋翔鸿飞腾俊逸骏驰宏"
    "博文斌彦辰航奕恒铮淼森朗煜炜晔昕曦婉清岚蓉蕊菲芸茜莎珊瑾璐婕娅妮姗媛嫣琰瑛琼丽娇艺颂韵"
    "冰建国庆德福永春秋冬海涵润新立振家耀光祥国民忠义仁智勤俭安康乐"
) | frozenset("".join(_ZhPerson.first_names))

# Words that precede a Chinese name (besides punctuation and non-Chinese text).
ZH_NAME_BEFORE: tuple[str, ...] = (
    "叫",
    "是",
    "名",
    "找",
    "给",
    "和",
    "与",
    "同",
    "及",
    "请",
    "由",
    "向",
    "被",
    "把",
    "让",
    "问",
    "对",
    "联系人",
    "联系",  # verbs that take a person: 请联系王小明, 通知李娜, 感谢张伟
    "通知",
    "告诉",
    "感谢",
    "转告",
    "致电",
    "拜访",
    "姓名",
    "客户",
    "患者",
    "同学",
    "老师",
    "经理",
    "员工",
    "收件人",
    "寄件人",
    "用户",
    "病人",
    "学生",
    "司机",
    "店主",
    "业主",
    "租客",
    "房东",
    "医生",
    "护士",
    "律师",
    "人",
    "代表",
    "妻子",
    "丈夫",
    "儿子",
    "女儿",
    "朋友",
    "同事",
    "顾客",
    "客人",
    "读者",
    "选手",
    "队员",
)
# Words that follow one.
ZH_NAME_AFTER: tuple[str, ...] = (
    "先生",
    "女士",
    "小姐",
    "老师",
    "同学",
    "经理",
    "医生",
    "师傅",
    "的",
    "说",
    "在",
    "是",
    "要",
    "有",
    "买",
    "打",
    "家",
    "今",
    "去",
    "来",
    "和",
    "与",
    "把",
    "给",
    "用",
    "做",
    "读",
    "写",
    "住",
    "从",
    "每",
    "一",
    "两",
    "共",
    "花",
    "带",
    "拿",
    "收",
    "寄",
    "向",
    "对",
    "已",
    "也",
    "都",
    "还",
    "想",
    "需",
    "又",
    "再",
    "先",
    "才",
    "负",
    "于",
    "将",
    "约",
    "提",
    "导",
    "奶奶",
    "爷爷",
    "妈妈",
    "爸爸",
    "阿姨",
    "叔叔",
    "主任",
    "教授",
    "吗",
    "呢",
    "吧",
    "啊",
    "发",
    "三",
    "四",
    "五",
    "六",
    "七",
    "八",
    "九",
    "十",
    "们",
    "跑",
    "走",
    "看",
    "吃",
    "存",
    "借",
    "卖",
    "付",
    "得",
    "拥",
    "种",
    "养",
    "折",
    "采",
)


def _en(attr: str) -> frozenset[str]:
    """One name list over Faker's English locales (en_US alone lacks Lily, Liam, Chloe ...)."""
    out: set[str] = set()
    for loc in ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN"):
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        out |= set(getattr(provider, attr, None) or ())
    return frozenset(out)


EN_FIRST_FEMALE: frozenset[str] = _en("first_names_female")
EN_FIRST: frozenset[str] = _en("first_names_male") | EN_FIRST_FEMALE | _en("first_names")
EN_LAST: frozenset[str] = _en("last_names")
