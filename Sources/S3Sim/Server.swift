import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The simulator's HTTP/1.1 server (SwiftNIO), keep-alive, on loopback.
public final class S3Simulator: @unchecked Sendable {
    public let service: SimService
    public var state: SimState { service.state }
    private let group: MultiThreadedEventLoopGroup
    // Set once by start(), read after: guarded by `lock`.
    private let lock = NIOLock()
    private var channel: Channel?

    private let batchScheduling: Bool

    /// - Parameters:
    ///   - threads: event-loop threads (1 measures "one core").
    ///   - verifySignatures: check SigV4 on every request (off only to measure its cost).
    ///   - batchScheduling: run the event loops as `SCHED_BATCH` (see `start`); off only to measure the difference.
    public init(state: SimState = SimState(), credentials: [SimCredential] = [.default], verifySignatures: Bool = true,
                threads: Int = 1, batchScheduling: Bool = true) {
        service = SimService(state: state, credentials: credentials, verifySignatures: verifySignatures)
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.batchScheduling = batchScheduling
    }

    /// Linux's SCHED_BATCH (include/uapi/linux/sched.h), which Glibc does not export to Swift (it sits behind
    /// _GNU_SOURCE).
    private static let schedBatch: Int32 = 3

    /// Binds `host:port` (0: a random free port) and returns the port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) throws -> Int {
        if batchScheduling {
            // The simulator shares the machine with the client it serves. At the default policy each answer's arrival
            // wakes a loop that preempts the client in the middle of its pass: under the client bench, 10,000 context
            // switches a second on two cores. SCHED_BATCH marks the loops as throughput work that does not preempt
            // on wake-up; they run when the client's slice ends, with more answers each time (2,300 switches a second;
            // the simulator's CPU per request 23 -> 20 µs). It needs no privilege, and only the loops' threads change.
            // https://man7.org/linux/man-pages/man7/sched.7.html
            for loop in group.makeIterator() {
                try loop.submit {
                    var param = sched_param()
                    param.sched_priority = 0
                    _ = sched_setscheduler(0, Self.schedBatch, &param)  // 0: the calling thread; best effort
                }.wait()
            }
        }
        let service = self.service
        // One LoopCache and one DelayedAnswers per event loop, shared by that loop's connections.
        let loops = NIOLockedValueBox<[ObjectIdentifier: (cache: LoopCache, delayed: DelayedAnswers)]>([:])
        let perLoop: @Sendable (EventLoop) -> (cache: LoopCache, delayed: DelayedAnswers) = { loop in
            loops.withLockedValue { map in
                if let found = map[ObjectIdentifier(loop)] { return found }
                let made = (cache: LoopCache(index: map.count), delayed: DelayedAnswers(loop: loop))
                map[ObjectIdentifier(loop)] = made
                return made
            }
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let (cache, delayed) = perLoop(channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(SimHTTPCodec(service: service, loop: cache, delayed: delayed))
                }
            }
        let channel = try bootstrap.bind(host: host, port: port).wait()
        lock.withLock { self.channel = channel }
        return channel.localAddress?.port ?? port
    }

    /// Each event loop thread's scheduling policy (tests).
    func schedulingPolicies() throws -> [Int32] {
        try group.makeIterator().map { try $0.submit { sched_getscheduler(0) }.wait() }
    }

    public var port: Int? { lock.withLock { channel?.localAddress?.port } }
    public var endpointURL: String { "http://127.0.0.1:\(port ?? 0)" }

    public func stop() {
        let channel = lock.withLock { () -> Channel? in
            defer { self.channel = nil }
            return self.channel
        }
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }
}
