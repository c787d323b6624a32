"""Slack: the personas as Slack teammates (Events API over HTTP, replies through slack_sdk's WebClient).

views.py     POST /slack/events: verify, acknowledge, store the message, hand it to a task
events.py    which events are answered, read from Slack's envelope
tasks.py     django-q2 tasks: answer a thread's messages in order; resume what a dead worker left
answer.py    one message: operator command or persona turn, then the reply
addressee.py which persona answers
commands.py  the operator commands (status, sessions, clear sessions, costs today)
text.py      Slack's markup in, as a persona reads it
mrkdwn.py    Markdown out, as Slack shows it, in parts within Slack's limits
client.py    the WebClient, user names, posting with retries
"""
