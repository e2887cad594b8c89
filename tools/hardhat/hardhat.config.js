// The local chain `opmlc challenge --rpc` is tested against (tests/test_game_rpc.py):
// `npx hardhat node --config tools/hardhat/hardhat.config.js`. Hardhat is pinned in
// package-lock.json; nothing here compiles (opmlc compiles with the pinned npm solc).
module.exports = {
  solidity: "0.8.28",
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      blockGasLimit: 30000000,
      accounts: { count: 4 },
    },
  },
};
