"""canary.doctor.checks"""
