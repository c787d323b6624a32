# Every moment the control panel shows reads the same: to the second, 24-hour, with its zone (UTC), and
# sorts as text. Django's English default ("Dec. 6, 2026, 10:50 p.m.") drops the seconds and the zone.
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
