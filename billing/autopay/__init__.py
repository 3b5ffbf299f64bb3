"""Autopay: enrolment, planning, charging and dunning of card charges on a customer account's bills."""
