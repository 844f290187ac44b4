# pragma version 0.4.3
"""
@notice TEST ONLY. Forces ether into a contract that has no payable fallback.
"""

@deploy
@payable
def __init__(target: address):
    selfdestruct(target)
