// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice The generated one-step verifier (contracts/generated/OpmlcStep.sol).
interface IOpmlcStep {
    function step(bytes32 _preStateRoot, bytes calldata _witness) external pure returns (bytes32);
}

/// @title OpmlcGame: optimistic claims about opmlc inferences and the dispute game that
///        settles them (spec/GAME.md).
/// @notice A task binds a registered model (an artifact) and an input (the initial state
///         root S0). A submitter claims the final state root with a bond; anyone may
///         challenge within a window, with a bond, by committing to a phase-2 trace that
///         starts at S0 and ends in another final state. Each challenge is a two-party
///         game: bisection over node boundaries (phase 2, every root proven in the mover's
///         phase-2 commitment), then over the VM steps of the one disputed node (phase 1,
///         its start and end taken from phase 2), then one step executed by the verifier.
///         A party that misses its deadline loses; the winner takes the loser's bond.
/// @dev Phase-2 commitments are binary keccak256 Merkle trees over the roots S_0..S_n,
///      zero-padded to a power of two (spec/TRACE.md). Proofs travel in calldata.
///      State encoding (spec/ISA.md): pc:u64 | step:u64 | status:u8 | depth:u8 |
///      regs[32]:u64 | memory root:bytes32, big-endian; a boundary state has zero registers.
contract OpmlcGame {
    // ---------------------------------------------------------------- types

    /// @notice A compiled model, as the artifact's node table describes it.
    struct Model {
        bytes32 artifact; // sha256 of the .opvm file
        bytes32 stepsRoot; // Merkle root over [0, steps_1, ..., steps_n] (bytes32 words)
        uint64 nodes; // n
        uint64 totalSteps; // S_n.step: the static step count of all nodes
        uint64 haltPc; // pc of S_n (the halt instruction)
        uint8 depth; // memory tree depth
    }

    /// @notice One inference to be claimed: a model and the initial state root S0.
    struct Task {
        uint64 model;
        uint64 claim; // the standing claim + 1 (0: none)
        bool resolved; // a claim on it became final
        bytes32 s0;
        bytes32 result; // the final state root of the final claim
    }

    enum ClaimStatus {
        None,
        Pending,
        Defeated,
        Final
    }

    struct Claim {
        uint64 task;
        uint64 deadline; // end of the challenge window
        uint32 openDisputes;
        ClaimStatus status;
        address submitter;
        bool bondPaid; // the claim bond went to a winning challenger
        bytes32 finalRoot;
        bytes32 commitment; // the submitter's phase-2 commitment (0 until first challenged)
        bytes32 snRoot; // the submitter's S_n (proven in `commitment`)
    }

    enum Phase {
        None,
        Defend, // the submitter must bind its commitment
        Nodes, // phase 2: bisection over node indices
        Open, // phase 2 found node `node`: open phase 1 over its steps
        Steps, // phase 1: bisection over the node's steps
        Step, // one step left: execute it on the verifier
        Done
    }

    /// @notice A two-party game over one claim. The bisection interval [lo, hi] holds:
    ///         both agree on the state at lo (`loRoot`), they differ at hi (`hiSub`,
    ///         `hiChal`); `midRoot` is the state at `mid` posted by the last mover.
    struct Dispute {
        uint64 claim;
        uint64 lo;
        uint64 hi;
        uint64 mid;
        address challenger;
        uint64 deadline;
        Phase phase;
        bool submitterToMove;
        bool challengerWon;
        uint64 node; // the disputed node (1-based), once phase 2 is over
        bytes32 commitment; // the challenger's phase-2 commitment
        bytes32 loRoot;
        bytes32 hiSub;
        bytes32 hiChal;
        bytes32 midRoot;
    }

    // ---------------------------------------------------------------- configuration

    /// @notice The one-step verifier called for the last step of every dispute.
    IOpmlcStep public immutable verifier;
    /// @notice Exact value a claim must carry.
    uint256 public immutable claimBond;
    /// @notice Exact value a challenge must carry.
    uint256 public immutable challengeBond;
    /// @notice Seconds after a claim during which it may be challenged.
    uint64 public immutable challengeWindow;
    /// @notice Seconds a party has for each move.
    uint64 public immutable moveWindow;

    uint8 internal constant STATUS_RUNNING = 0;
    uint8 internal constant STATUS_HALTED = 1;

    // ---------------------------------------------------------------- state

    Model[] internal models_;
    Task[] internal tasks_;
    Claim[] internal claims_;
    Dispute[] internal disputes_;
    /// @notice Bonds won or returned, withdrawable by their owner.
    mapping(address => uint256) public credit;

    // ---------------------------------------------------------------- events

    event ModelRegistered(uint256 indexed model, bytes32 artifact, bytes32 stepsRoot, uint64 nodes);
    event TaskCreated(uint256 indexed task, uint256 indexed model, bytes32 s0);
    event Claimed(uint256 indexed claim, uint256 indexed task, address submitter, bytes32 finalRoot);
    event Challenged(uint256 indexed dispute, uint256 indexed claim, address challenger, bytes32 commitment);
    event Defended(uint256 indexed dispute, bytes32 commitment);
    /// @notice A bisection move: the interval is now [lo, hi]; `mid` / `midRoot` the mover's new
    ///         midpoint (mid == 0 when the interval has no midpoint).
    event Moved(uint256 indexed dispute, Phase phase, address mover, uint64 lo, uint64 hi, uint64 mid, bytes32 midRoot);
    event NodeFound(uint256 indexed dispute, uint64 node, bytes32 startRoot);
    event PhaseOneOpened(uint256 indexed dispute, uint64 node, uint64 steps);
    event StepExecuted(uint256 indexed dispute, uint64 step, bytes32 preRoot, bytes32 postRoot);
    event TimedOut(uint256 indexed dispute, address loser);
    event DisputeResolved(uint256 indexed dispute, bool challengerWon);
    event ClaimFinalized(uint256 indexed claim, bytes32 finalRoot);
    event Withdrawn(address indexed to, uint256 amount);

    // ---------------------------------------------------------------- errors

    error BadModel();
    error UnknownModel(uint256 model);
    error UnknownTask(uint256 task);
    error UnknownClaim(uint256 claim);
    error UnknownDispute(uint256 dispute);
    error WrongBond(uint256 sent, uint256 required);
    error TaskTaken(uint256 task);
    error ClaimNotPending(uint256 claim);
    error WindowClosed(uint64 deadline);
    error WindowOpen(uint64 deadline);
    error DisputesOpen(uint32 count);
    error OwnClaim();
    error SameResult(bytes32 finalRoot);
    error NotInCommitment(uint256 index, bytes32 leaf);
    error WrongFinal(bytes32 expected, bytes32 got);
    error WrongPhase(Phase phase);
    error NotYourTurn(address expected);
    error NotAParty();
    error DeadlinePassed(uint64 deadline);
    error DeadlineNotPassed(uint64 deadline);
    error WrongSteps(uint64 node, uint64 steps);
    error NoMatch(bytes32 postRoot);
    error NothingToWithdraw();
    error TransferFailed();
    error NotResolved(uint256 task);
    error NotInMemory(uint256 leaf);

    // ---------------------------------------------------------------- setup

    /// @param _verifier The generated one-step verifier.
    /// @param _claimBond Exact bond of a claim (wei).
    /// @param _challengeBond Exact bond of a challenge (wei).
    /// @param _challengeWindow Seconds a claim may be challenged.
    /// @param _moveWindow Seconds a party has for each move.
    constructor(
        IOpmlcStep _verifier,
        uint256 _claimBond,
        uint256 _challengeBond,
        uint64 _challengeWindow,
        uint64 _moveWindow
    ) {
        verifier = _verifier;
        claimBond = _claimBond;
        challengeBond = _challengeBond;
        challengeWindow = _challengeWindow;
        moveWindow = _moveWindow;
    }

    /// @notice Register a compiled model (its node table's commitments).
    /// @param _artifact sha256 of the .opvm file.
    /// @param _stepsRoot Merkle root over [0, steps_1, ..., steps_n] as bytes32 words.
    /// @param _nodes Number of nodes n (>= 1).
    /// @param _totalSteps Static step count of all nodes (S_n.step).
    /// @param _haltPc The pc of S_n (the artifact's halt instruction).
    /// @param _depth Memory tree depth.
    /// @return model_ The model id.
    function registerModel(
        bytes32 _artifact,
        bytes32 _stepsRoot,
        uint64 _nodes,
        uint64 _totalSteps,
        uint64 _haltPc,
        uint8 _depth
    ) external returns (uint256 model_) {
        if (_nodes == 0 || _depth == 0 || _depth > 59) revert BadModel();
        model_ = models_.length;
        models_.push(Model(_artifact, _stepsRoot, _nodes, _totalSteps, _haltPc, _depth));
        emit ModelRegistered(model_, _artifact, _stepsRoot, _nodes);
    }

    /// @notice Create a task: run model `_model` on the input whose initial state root is `_s0`.
    /// @param _model A registered model.
    /// @param _s0 The initial state root (the artifact's image with the input written).
    /// @return task_ The task id.
    function createTask(uint256 _model, bytes32 _s0) external returns (uint256 task_) {
        if (_model >= models_.length) revert UnknownModel(_model);
        task_ = tasks_.length;
        tasks_.push(Task(uint64(_model), 0, false, _s0, bytes32(0)));
        emit TaskCreated(task_, _model, _s0);
    }

    // ---------------------------------------------------------------- claims

    /// @notice Claim the final state root of a task, with the claim bond.
    /// @dev One standing claim per task; a new one only after the standing one was defeated.
    /// @param _task The task.
    /// @param _finalRoot The halted state's root.
    /// @return claim_ The claim id.
    function claim(uint256 _task, bytes32 _finalRoot) external payable returns (uint256 claim_) {
        if (msg.value != claimBond) revert WrongBond(msg.value, claimBond);
        Task storage t = _taskAt(_task);
        if (t.resolved) revert TaskTaken(_task);
        if (t.claim != 0 && claims_[t.claim - 1].status == ClaimStatus.Pending) revert TaskTaken(_task);
        claim_ = claims_.length;
        uint64 deadline = uint64(block.timestamp) + challengeWindow;
        claims_.push(
            Claim(uint64(_task), deadline, 0, ClaimStatus.Pending, msg.sender, false, _finalRoot, 0, 0)
        );
        t.claim = uint64(claim_ + 1);
        emit Claimed(claim_, _task, msg.sender, _finalRoot);
    }

    /// @notice Make a pending claim final once its window has passed and no dispute is open.
    /// @param _claim The claim.
    function finalize(uint256 _claim) external {
        Claim storage c = _claimAt(_claim);
        if (c.status != ClaimStatus.Pending) revert ClaimNotPending(_claim);
        if (block.timestamp <= c.deadline) revert WindowOpen(c.deadline);
        if (c.openDisputes != 0) revert DisputesOpen(c.openDisputes);
        c.status = ClaimStatus.Final;
        Task storage t = tasks_[c.task];
        t.resolved = true;
        t.result = c.finalRoot;
        credit[c.submitter] += claimBond;
        emit ClaimFinalized(_claim, c.finalRoot);
    }

    // ---------------------------------------------------------------- disputes

    /// @notice Challenge a pending claim within its window, with the challenge bond, bound to
    ///         the challenger's phase-2 commitment: it must start at the task's S0 and end in
    ///         a boundary state S_n whose halt is not the claimed final root.
    /// @param _claim The claim.
    /// @param _commitment The challenger's phase-2 commitment.
    /// @param _memRootN The memory root of the challenger's S_n.
    /// @param _proof0 Inclusion proof of S0 at index 0.
    /// @param _proofN Inclusion proof of S_n at index n.
    /// @return dispute_ The dispute id.
    function challenge(
        uint256 _claim,
        bytes32 _commitment,
        bytes32 _memRootN,
        bytes32[] calldata _proof0,
        bytes32[] calldata _proofN
    ) external payable returns (uint256 dispute_) {
        if (msg.value != challengeBond) revert WrongBond(msg.value, challengeBond);
        Claim storage c = _claimAt(_claim);
        if (c.status != ClaimStatus.Pending) revert ClaimNotPending(_claim);
        if (block.timestamp > c.deadline) revert WindowClosed(c.deadline);
        if (msg.sender == c.submitter) revert OwnClaim();
        Task storage t = tasks_[c.task];
        (bytes32 sn, bytes32 halted) = _bindTrace(t, _commitment, _memRootN, _proof0, _proofN);
        if (halted == c.finalRoot) revert SameResult(c.finalRoot);
        dispute_ = disputes_.length;
        Dispute storage d = disputes_.push();
        d.claim = uint64(_claim);
        d.challenger = msg.sender;
        d.commitment = _commitment;
        d.lo = 0;
        d.hi = models_[t.model].nodes;
        d.loRoot = t.s0;
        d.hiChal = sn;
        d.phase = Phase.Defend;
        d.submitterToMove = true;
        d.deadline = uint64(block.timestamp) + moveWindow;
        c.openDisputes += 1;
        emit Challenged(dispute_, _claim, msg.sender, _commitment);
    }

    /// @notice The submitter binds its phase-2 commitment (the first time it is challenged;
    ///         later disputes reuse it) and posts its root at the first midpoint.
    /// @param _dispute The dispute.
    /// @param _commitment The submitter's phase-2 commitment (ignored once bound).
    /// @param _memRootN The memory root of the submitter's S_n (ignored once bound).
    /// @param _proof0 Inclusion proof of S0 at index 0 (ignored once bound).
    /// @param _proofN Inclusion proof of S_n at index n (ignored once bound).
    /// @param _midRoot The submitter's root at the first midpoint (unused when n == 1).
    /// @param _midProof Its inclusion proof.
    function defend(
        uint256 _dispute,
        bytes32 _commitment,
        bytes32 _memRootN,
        bytes32[] calldata _proof0,
        bytes32[] calldata _proofN,
        bytes32 _midRoot,
        bytes32[] calldata _midProof
    ) external {
        Dispute storage d = _turn(_dispute, Phase.Defend);
        Claim storage c = claims_[d.claim];
        if (c.commitment == bytes32(0)) {
            (bytes32 sn, bytes32 halted) =
                _bindTrace(tasks_[c.task], _commitment, _memRootN, _proof0, _proofN);
            if (halted != c.finalRoot) revert WrongFinal(c.finalRoot, halted);
            c.commitment = _commitment;
            c.snRoot = sn;
        }
        d.hiSub = c.snRoot;
        emit Defended(_dispute, c.commitment);
        d.phase = Phase.Nodes;
        _requireMid(d, c.commitment, _midRoot, _midProof);
        _advance(_dispute, d, _midRoot);
    }

    /// @notice A phase-2 move: the mover's root at the pending midpoint (proven in its
    ///         commitment) narrows the interval; then its root at the next midpoint.
    /// @param _dispute The dispute.
    /// @param _root The mover's root at the pending midpoint.
    /// @param _proof Its inclusion proof.
    /// @param _nextRoot The mover's root at the next midpoint (unused if none).
    /// @param _nextProof Its inclusion proof.
    function moveNodes(
        uint256 _dispute,
        bytes32 _root,
        bytes32[] calldata _proof,
        bytes32 _nextRoot,
        bytes32[] calldata _nextProof
    ) external {
        Dispute storage d = _turn(_dispute, Phase.Nodes);
        bytes32 mine = _commitmentOf(d, msg.sender);
        _requireIncluded(mine, d.mid, _root, _proof);
        _narrow(d, _root);
        _requireMid(d, mine, _nextRoot, _nextProof);
        _advance(_dispute, d, _nextRoot);
    }

    /// @notice Open phase 1 over the disputed node's steps (their number proven against the
    ///         model's steps root) and post the mover's root at its first midpoint. Its start
    ///         and end states are the agreed S_{k-1} and the disputed S_k of phase 2.
    /// @param _dispute The dispute.
    /// @param _steps The node's static step count.
    /// @param _stepsProof Inclusion proof of `_steps` at index `node` of the steps root.
    /// @param _midRoot The mover's root at step steps / 2 (unused when steps <= 1).
    function openSteps(uint256 _dispute, uint64 _steps, bytes32[] calldata _stepsProof, bytes32 _midRoot)
        external
    {
        Dispute storage d = _turn(_dispute, Phase.Open);
        Model storage m = models_[tasks_[claims_[d.claim].task].model];
        if (!_included(m.stepsRoot, d.node, bytes32(uint256(_steps)), _stepsProof)) {
            revert WrongSteps(d.node, _steps);
        }
        emit PhaseOneOpened(_dispute, d.node, _steps);
        d.lo = 0;
        d.hi = _steps;
        if (_steps == 0) {
            // S_k is S_{k-1}: the side that says otherwise is wrong (spec/GAME.md).
            _resolve(_dispute, d, d.hiSub != d.loRoot);
            return;
        }
        d.phase = Phase.Steps;
        _advance(_dispute, d, _midRoot);
    }

    /// @notice A phase-1 move: the mover's root at the pending step narrows the interval;
    ///         then its root at the next midpoint.
    /// @param _dispute The dispute.
    /// @param _root The mover's root at the pending midpoint.
    /// @param _nextRoot The mover's root at the next midpoint (unused if none).
    function moveSteps(uint256 _dispute, bytes32 _root, bytes32 _nextRoot) external {
        Dispute storage d = _turn(_dispute, Phase.Steps);
        _narrow(d, _root);
        _advance(_dispute, d, _nextRoot);
    }

    /// @notice Execute the one disputed step on the verifier from the agreed pre-state; the
    ///         party whose post-state it confirms wins. Either party may call it.
    /// @param _dispute The dispute.
    /// @param _witness The one-step witness of the agreed pre-state (spec/ISA.md).
    function step(uint256 _dispute, bytes calldata _witness) external {
        Dispute storage d = _disputeAt(_dispute);
        if (d.phase != Phase.Step) revert WrongPhase(d.phase);
        if (msg.sender != d.challenger && msg.sender != claims_[d.claim].submitter) revert NotAParty();
        if (block.timestamp > d.deadline) revert DeadlinePassed(d.deadline);
        bytes32 post = verifier.step(d.loRoot, _witness);
        emit StepExecuted(_dispute, d.lo, d.loRoot, post);
        if (post == d.hiSub) _resolve(_dispute, d, false);
        else if (post == d.hiChal) _resolve(_dispute, d, true);
        else revert NoMatch(post);
    }

    /// @notice End a dispute whose party to move missed its deadline: that party loses.
    /// @param _dispute The dispute.
    function timeout(uint256 _dispute) external {
        Dispute storage d = _disputeAt(_dispute);
        if (d.phase == Phase.Done) revert WrongPhase(d.phase);
        if (block.timestamp <= d.deadline) revert DeadlineNotPassed(d.deadline);
        address loser = d.submitterToMove ? claims_[d.claim].submitter : d.challenger;
        emit TimedOut(_dispute, loser);
        _resolve(_dispute, d, d.submitterToMove);
    }

    /// @notice Withdraw the bonds credited to the caller.
    function withdraw() external {
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credit[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- reading results

    /// @notice A 32-byte leaf of the final memory of a resolved task, proven against its
    ///         final state root: read a model's output on chain.
    /// @param _task A resolved task.
    /// @param _memRoot The memory root of its final state.
    /// @param _leaf The leaf index (byte address / 32).
    /// @param _data The leaf's 32 bytes.
    /// @param _proof The leaf's Merkle path (depth siblings, bottom-up).
    /// @return data_ `_data`, once proven.
    function outputLeaf(
        uint256 _task,
        bytes32 _memRoot,
        uint256 _leaf,
        bytes32 _data,
        bytes32[] calldata _proof
    ) external view returns (bytes32 data_) {
        Task storage t = _taskAt(_task);
        if (!t.resolved) revert NotResolved(_task);
        Model storage m = models_[t.model];
        bytes32 halted = _haltedRoot(m, _memRoot);
        if (halted != t.result) revert WrongFinal(t.result, halted);
        if (_proof.length != m.depth || !_included(_memRoot, _leaf, _data, _proof)) revert NotInMemory(_leaf);
        return _data;
    }

    /// @notice The model `_model`.
    function models(uint256 _model) external view returns (Model memory) {
        if (_model >= models_.length) revert UnknownModel(_model);
        return models_[_model];
    }

    /// @notice The task `_task`.
    function tasks(uint256 _task) external view returns (Task memory) {
        return _taskAt(_task);
    }

    /// @notice The claim `_claim`.
    function claims(uint256 _claim) external view returns (Claim memory) {
        return _claimAt(_claim);
    }

    /// @notice The dispute `_dispute`.
    function disputes(uint256 _dispute) external view returns (Dispute memory) {
        return _disputeAt(_dispute);
    }

    // ---------------------------------------------------------------- internals

    function _taskAt(uint256 _task) internal view returns (Task storage) {
        if (_task >= tasks_.length) revert UnknownTask(_task);
        return tasks_[_task];
    }

    function _claimAt(uint256 _claim) internal view returns (Claim storage) {
        if (_claim >= claims_.length) revert UnknownClaim(_claim);
        return claims_[_claim];
    }

    function _disputeAt(uint256 _dispute) internal view returns (Dispute storage) {
        if (_dispute >= disputes_.length) revert UnknownDispute(_dispute);
        return disputes_[_dispute];
    }

    /// @dev The dispute, after checking that it is in `_phase`, that the caller is the party
    ///      to move and that its deadline has not passed.
    function _turn(uint256 _dispute, Phase _phase) internal view returns (Dispute storage d_) {
        d_ = _disputeAt(_dispute);
        if (d_.phase != _phase) revert WrongPhase(d_.phase);
        address mover = d_.submitterToMove ? claims_[d_.claim].submitter : d_.challenger;
        if (msg.sender != mover) revert NotYourTurn(mover);
        if (block.timestamp > d_.deadline) revert DeadlinePassed(d_.deadline);
    }

    function _commitmentOf(Dispute storage _d, address _party) internal view returns (bytes32) {
        return _party == _d.challenger ? _d.commitment : claims_[_d.claim].commitment;
    }

    /// @dev The mover's root at the pending midpoint: equal to the other's, the interval
    ///      becomes [mid, hi]; different, [lo, mid] with both roots at the new hi.
    function _narrow(Dispute storage _d, bytes32 _root) internal {
        if (_root == _d.midRoot) {
            _d.lo = _d.mid;
            _d.loRoot = _root;
        } else {
            _d.hi = _d.mid;
            bool sub = msg.sender != _d.challenger;
            _d.hiSub = sub ? _root : _d.midRoot;
            _d.hiChal = sub ? _d.midRoot : _root;
        }
    }

    /// @dev Require `_root` to be the mover's leaf at the interval's next midpoint, if it has one.
    function _requireMid(Dispute storage _d, bytes32 _commitment, bytes32 _root, bytes32[] calldata _proof)
        internal
        view
    {
        if (_d.hi - _d.lo > 1) _requireIncluded(_commitment, _d.lo + (_d.hi - _d.lo) / 2, _root, _proof);
    }

    /// @dev After a move: the mover's root `_root` at the interval's new midpoint, or, when
    ///      the interval is one long, the next phase. The other party moves next.
    function _advance(uint256 _dispute, Dispute storage _d, bytes32 _root) internal {
        _d.submitterToMove = !_d.submitterToMove;
        _d.deadline = uint64(block.timestamp) + moveWindow;
        if (_d.hi - _d.lo > 1) {
            uint64 mid = _d.lo + (_d.hi - _d.lo) / 2;
            _d.mid = mid;
            _d.midRoot = _root;
            emit Moved(_dispute, _d.phase, msg.sender, _d.lo, _d.hi, mid, _root);
            return;
        }
        _d.mid = 0;
        _d.midRoot = bytes32(0);
        emit Moved(_dispute, _d.phase, msg.sender, _d.lo, _d.hi, 0, bytes32(0));
        if (_d.phase == Phase.Nodes) {
            _d.node = _d.hi;
            _d.phase = Phase.Open;
            emit NodeFound(_dispute, _d.hi, _d.loRoot);
        } else {
            _d.phase = Phase.Step;
        }
    }

    function _resolve(uint256 _dispute, Dispute storage _d, bool _challengerWon) internal {
        _d.phase = Phase.Done;
        _d.challengerWon = _challengerWon;
        Claim storage c = claims_[_d.claim];
        c.openDisputes -= 1;
        if (_challengerWon) {
            uint256 prize = challengeBond;
            if (c.status == ClaimStatus.Pending) {
                c.status = ClaimStatus.Defeated;
                tasks_[c.task].claim = 0;
            }
            if (!c.bondPaid) {
                c.bondPaid = true;
                prize += claimBond;
            }
            credit[_d.challenger] += prize;
        } else if (c.status == ClaimStatus.Defeated) {
            // Defeated in another dispute: nothing left to win here; the bond goes back.
            credit[_d.challenger] += challengeBond;
        } else {
            credit[c.submitter] += challengeBond;
        }
        emit DisputeResolved(_dispute, _challengerWon);
    }

    /// @dev Check that phase-2 commitment `_commitment` starts at the task's S0 and ends in
    ///      the boundary state S_n over `_memRootN`; return S_n and the halted state after it.
    function _bindTrace(
        Task storage _t,
        bytes32 _commitment,
        bytes32 _memRootN,
        bytes32[] calldata _proof0,
        bytes32[] calldata _proofN
    ) internal view returns (bytes32 sn_, bytes32 halted_) {
        Model storage m = models_[_t.model];
        sn_ = _boundaryRoot(m, _memRootN);
        halted_ = _haltedRoot(m, _memRootN);
        _requireIncluded(_commitment, 0, _t.s0, _proof0);
        _requireIncluded(_commitment, m.nodes, sn_, _proofN);
    }

    /// @dev keccak256 of the boundary state (pc = haltPc, step = totalSteps, RUNNING,
    ///      registers zero) over `_memRoot`: S_n.
    function _boundaryRoot(Model storage _m, bytes32 _memRoot) internal view returns (bytes32) {
        return _stateRoot(_m.haltPc, _m.totalSteps, STATUS_RUNNING, _m.depth, _memRoot);
    }

    /// @dev keccak256 of the halted state one step after S_n over `_memRoot`.
    function _haltedRoot(Model storage _m, bytes32 _memRoot) internal view returns (bytes32) {
        return _stateRoot(_m.haltPc, _m.totalSteps + 1, STATUS_HALTED, _m.depth, _memRoot);
    }

    function _stateRoot(uint64 _pc, uint64 _step, uint8 _status, uint8 _depth, bytes32 _memRoot)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(_pc, _step, _status, _depth, new bytes(256), _memRoot));
    }

    function _requireIncluded(bytes32 _root, uint256 _index, bytes32 _leaf, bytes32[] calldata _proof)
        internal
        pure
    {
        if (!_included(_root, _index, _leaf, _proof)) revert NotInCommitment(_index, _leaf);
    }

    /// @dev Whether `_leaf` is leaf `_index` of the binary keccak256 tree with root `_root`
    ///      (siblings bottom-up; bit l of the index set: the path node is a right child).
    function _included(bytes32 _root, uint256 _index, bytes32 _leaf, bytes32[] calldata _proof)
        internal
        pure
        returns (bool)
    {
        bytes32 h = _leaf;
        uint256 idx = _index;
        for (uint256 i = 0; i < _proof.length; i++) {
            h = idx & 1 == 1 ? keccak256(abi.encodePacked(_proof[i], h)) : keccak256(abi.encodePacked(h, _proof[i]));
            idx >>= 1;
        }
        return idx == 0 && h == _root;
    }
}
