"""Enrolment in paperless e-bills, and guest enrolment from a payment's receipt."""
