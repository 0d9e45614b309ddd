"""Chat logs: records of what each exchange said, their writer and `aifd convert`."""
