def expected_failures(variant, parser):
    return set()
