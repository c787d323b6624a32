"""The six activities of a persona's day. Each takes its ActivityRun, does its work (thinking through the
turn engine with `lifeloop.thinking.think`) and returns an Outcome; `lifeloop.runner` records it."""

from ..models import Activity
from . import goals, journal, news, post, reflection, team_check

ACTIVITIES = {
    Activity.NEWS: news.run,
    Activity.GOALS: goals.run,
    Activity.TEAM_CHECK: team_check.run,
    Activity.REFLECTION: reflection.run,
    Activity.JOURNAL: journal.run,
    Activity.POST: post.run,
}
