"""Partner data contracts (YAML, one per partner) and the readers they drive."""
from schemas.contract import Column, Contract, ContractError, load_contract, load_contracts

__all__ = ["Column", "Contract", "ContractError", "load_contract", "load_contracts"]
