# One time format on every admin page, the one the API, the logs and the execution timeline
# use: ISO order, 24-hour clock (times are UTC, TIME_ZONE). Django's English default is
# "Nov. 30, 2026, 10:11 p.m.".
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
