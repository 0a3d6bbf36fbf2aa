import CCurl
import Domain
import Foundation
@testable import S3
import S3Sim
import XCTest

/// Connections that end under the transport. It keeps idle kept-alive sockets registered with epoll between requests
/// (`CurlTransport.watch`); these show that a closed one is replaced, never left unwatched (a request would then
/// wait for its timeout, which these tests set to 3 s so that it fails them).
final class TransportTests: XCTestCase {
    private func client(for url: String, connections: Int = 512, drivers: Int = 1) throws -> S3Client {
        var transport = TransportConfiguration()
        transport.maxHostConnections = connections
        transport.requestTimeout = 3
        transport.connectTimeout = 2
        transport.drivers = drivers
        return try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: url), transport: transport),
                            credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret")))
    }

    private static func get(_ client: S3Client, _ i: Int) async -> S3Result {
        await client.send(.getObject(bucket: "bucket-a", key: "k\(i)"))
    }

    /// `Connection: close` on every other answer: libcurl closes that socket, and the next connection usually gets the
    /// same descriptor number, which must be registered afresh.
    func testConnectionsClosedByTheServerAreReplaced() async throws {
        let stub = StubServer()
        let counter = LockedCounter()
        let url = try stub.start { _ in
            let n = counter.next()
            return (200, n % 2 == 0 ? [("Connection", "close")] : [], "answer \(n)")
        }
        defer { stub.stop() }
        let client = try client(for: url)
        defer { client.shutdown() }
        for i in 0..<30 {
            guard case .success(let response) = await Self.get(client, i) else { return XCTFail("request \(i) failed") }
            XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "answer \(i)")
        }
        XCTAssertEqual(stub.requests.count, 30)
    }

    /// A kept-alive connection stays registered between requests: after the first, a request costs no epoll call.
    func testKeptAliveConnectionStaysRegisteredBetweenRequests() async throws {
        let stub = StubServer()
        let url = try stub.start(recording: false) { _ in (200, [], "answer") }
        defer { stub.stop() }
        let client = try client(for: url)
        defer { client.shutdown() }
        guard case .success = await Self.get(client, 0) else { return XCTFail("first request failed") }
        let before = client.transport.epollChanges
        for i in 1...50 {
            guard case .success = await Self.get(client, i) else { return XCTFail("request \(i) failed") }
        }
        XCTAssertEqual(client.transport.epollChanges, before, "epoll calls for 50 requests on a kept-alive connection")
    }

    /// A driver spreads its connections over several multi handles (`ConnectionPool`): together they keep to the
    /// connection cap, and a later round of requests reuses the connections the first one opened, whichever pool
    /// each request lands in.
    func testPoolsKeepToTheCapAndReuseTheirConnections() async throws {
        let stub = StubServer()
        let url = try stub.start(recording: false) { _ in (200, [], "answer") }
        defer { stub.stop() }
        let cap = ConnectionPool.connections * 2 + 2  // three pools
        let client = try client(for: url, connections: cap)
        defer { client.shutdown() }
        func round(_ n: Int) async -> Int {
            await withTaskGroup(of: Bool.self) { group in
                for i in 0..<n { group.addTask { if case .success = await TransportTests.get(client, i) { return true } else { return false } } }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        let first = await round(cap * 3)
        XCTAssertEqual(first, cap * 3)
        let opened = client.transport.connectionsOpened
        XCTAssertGreaterThan(opened, ConnectionPool.connections, "more than one pool's worth of connections was used")
        XCTAssertLessThanOrEqual(opened, cap, "the cap holds across pools")
        // Later rounds spread over the pools, each of which kept a share of those connections.
        for _ in 0..<3 {
            let later = await round(ConnectionPool.connections)
            XCTAssertEqual(later, ConnectionPool.connections)
        }
        XCTAssertEqual(client.transport.connectionsOpened, opened, "later rounds reused the first round's connections")
    }

    /// A new transfer goes to the least busy pool if that pool holds an idle connection to its host, else to one that
    /// does: with many hosts, the least busy pool often holds none to the host asked.
    func testPoolChoicePrefersThePoolsWithIdleConnectionsToTheHost() {
        var choice = PoolChoice()
        var active = [5, 0, 9, 2]
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 1, "no history: the least busy")
        choice.finished(host: "a.example", pool: 2, pools: 4)
        choice.finished(host: "a.example", pool: 3, pools: 4)
        XCTAssertEqual(choice.choose(host: "b.example", pools: 4) { active[$0] }, 1, "another host's idle connections do not count")
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 2, "a pool with one idle, even the busiest")
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 3)
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 1, "none left: the least busy again")
        choice.finished(host: "a.example", pool: 0, pools: 4)
        choice.finished(host: "a.example", pool: 1, pools: 4)
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 1, "the least busy, as it has one idle")
        active[1] = 7
        XCTAssertEqual(choice.choose(host: "a.example", pools: 4) { active[$0] }, 0)
        XCTAssertEqual(choice.choose(host: "a.example", pools: 1) { _ in 0 }, 0)
        // What is remembered is bounded by how many connections a pool can keep.
        for _ in 0..<(10 * ConnectionPool.connections) { choice.finished(host: "c.example", pool: 0, pools: 2) }
        var taken = 0
        while choice.choose(host: "c.example", pools: 2, active: { $0 == 0 ? 1 : 0 }) == 0 { taken += 1 }
        XCTAssertEqual(taken, 2 * ConnectionPool.connections)
        // And by how many hosts: past the limit it starts again.
        choice.finished(host: "d.example", pool: 0, pools: 2)
        for i in 0..<PoolChoice.hostsRemembered { choice.finished(host: "host-\(i)", pool: 0, pools: 2) }
        XCTAssertEqual(choice.choose(host: "d.example", pools: 2, active: { $0 == 0 ? 1 : 0 }), 1, "d.example was forgotten")
    }

    /// Two hosts (as two virtual-hosted buckets are): after each has one connection idle, requests to both at once
    /// reuse those two connections round after round, though the least busy pool holds neither.
    func testRequestsToSeveralHostsReuseTheirIdleConnections() async throws {
        let a = StubServer(), b = StubServer()
        let urlA = try a.start(recording: false) { _ in (200, [], "a") }
        let urlB = try b.start(recording: false) { _ in (200, [], "b") }
        defer { a.stop(); b.stop() }
        let client = try client(for: urlA, connections: ConnectionPool.connections * 2 + 2)  // three pools
        defer { client.shutdown() }
        let transport = client.transport
        func get(_ url: String) async -> Bool {
            let host = String(url.dropFirst("http://".count))
            let request = PreparedRequest(method: "GET", url: url + "/k", headers: [("Host", host)], body: [])
            return await withCheckedContinuation { done in
                transport.submit(request) { result in
                    if case .response(let r) = result { done.resume(returning: r.status == 200) } else { done.resume(returning: false) }
                }
            }
        }
        for url in [urlA, urlA, urlB, urlB] {
            let ok = await get(url)
            XCTAssertTrue(ok)
        }
        XCTAssertEqual(transport.connectionsOpened, 2)
        for round in 0..<20 {
            async let x = get(urlA)
            async let y = get(urlB)
            let (okA, okB) = await (x, y)
            XCTAssertTrue(okA && okB, "round \(round)")
        }
        XCTAssertEqual(transport.connectionsOpened, 2, "every request reused its host's connection")
    }

    /// The transport hands libcurl a parsed URL, parses it again only when the host changes, and names each request's
    /// path and query itself (`EasyHandle.setURL`). Runs of requests to one server, then the other, with and without a
    /// query, with dot segments and upper-case escapes, must each reach their own server with their target exactly as
    /// given; also on the path taken when a forward proxy is configured for plain http.
    func testEachRequestReachesItsOwnServerWithItsTargetExactly() async throws {
        let a = StubServer(), b = StubServer()
        let urlA = try a.start(recording: false) { (200, [], "A " + $0.uri) }
        let urlB = try b.start(recording: false) { (200, [], "B " + $0.uri) }
        defer { a.stop(); b.stop() }
        let targets = ["/bucket/k1?encryption", "/bucket/./x/../y", "/bucket/a%2Bb%C3%A9?versionId=v%2B1&x=", "/b//c/", "/bucket/k1"]
        for proxied in [false, true] {
            var configuration = TransportConfiguration()
            configuration.drivers = 1
            configuration.plainHTTPProxied = proxied
            let transport = try CurlTransport(configuration: configuration)
            defer { transport.shutdown() }
            for (server, url) in [("A", urlA), ("B", urlB), ("A", urlA), ("B", urlB)] {
                for target in targets {
                    let answer = await Self.fetch(transport, url + target)
                    XCTAssertEqual(answer, "\(server) \(target)", "proxied \(proxied)")
                }
                // A URL with no path asks for "/".
                let root = await Self.fetch(transport, url)
                XCTAssertEqual(root, "\(server) /", "proxied \(proxied)")
            }
        }
    }

    /// With `http_proxy` set, libcurl sends plain-http requests to the proxy with the whole URL in the request line;
    /// naming the target ourselves must not take that away.
    func testPlainHTTPThroughAForwardProxyCarriesTheWholeURL() async throws {
        let proxy = StubServer()
        let proxyURL = try proxy.start(recording: false) { (200, [], $0.uri) }
        defer { proxy.stop() }
        // A machine's own no_proxy could send the request past the proxy to the address below: set aside for the test.
        let saved = ["no_proxy", "NO_PROXY"].map { (name: String) in (name, getenv(name).map { String(cString: $0) }) }
        saved.forEach { unsetenv($0.0) }
        setenv("http_proxy", proxyURL, 1)
        defer {
            unsetenv("http_proxy")
            for (name, value) in saved { if let value { setenv(name, value, 1) } }
        }
        var configuration = TransportConfiguration()
        configuration.drivers = 1
        configuration.connectTimeout = 2
        configuration.requestTimeout = 3
        let transport = try CurlTransport(configuration: configuration)
        defer { transport.shutdown() }
        // A documentation address (RFC 5737): only the proxy on loopback is ever contacted.
        for target in ["/bucket/a%2Bb?versionId=v%2B1", "/bucket/k2"] {
            let answer = await Self.fetch(transport, "http://192.0.2.1:9" + target)
            XCTAssertEqual(answer, "http://192.0.2.1:9" + target)
        }
    }

    /// A URL libcurl cannot parse fails that request alone, naming the URL; the handle serves the next one.
    func testAnUnparsableURLFailsOnlyItsRequest() async throws {
        let server = StubServer()
        let url = try server.start(recording: false) { (200, [], $0.uri) }
        defer { server.stop() }
        var configuration = TransportConfiguration()
        configuration.drivers = 1
        let transport = try CurlTransport(configuration: configuration)
        defer { transport.shutdown() }
        let first = await Self.fetch(transport, url + "/k1")
        XCTAssertEqual(first, "/k1")
        let bad = await Self.fetch(transport, "http://[::1/k2")
        XCTAssertTrue(bad.contains("code: \(CURLE_URL_MALFORMAT.rawValue)") && bad.contains("http://[::1/k2"), bad)
        let next = await Self.fetch(transport, url + "/k3")
        XCTAssertEqual(next, "/k3")
    }

    /// GET `url` (Host from the URL); the answer's body, or the failure described.
    private static func fetch(_ transport: CurlTransport, _ url: String) async -> String {
        let authority = url.dropFirst("http://".count).prefix { $0 != "/" }
        let request = PreparedRequest(method: "GET", url: url, headers: [("Host", String(authority))], body: [])
        return await withCheckedContinuation { done in
            transport.submit(request) { result in
                if case .response(let r) = result { done.resume(returning: String(decoding: r.body, as: UTF8.self)) } else {
                    done.resume(returning: "\(result)")
                }
            }
        }
    }

    /// Driver threads carry their name in the kernel, where `top -H` and `perf` read it.
    func testDriverThreadsAreNamed() throws {
        // Thread ids, not a count: an earlier test's driver threads may still be exiting while this one starts.
        func named() -> Set<String> {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return Set(tasks.filter {
                (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.hasPrefix(CurlTransport.threadName) == true
            })
        }
        let before = named()
        let client = try client(for: "http://127.0.0.1:9", drivers: 2)  // never asked for anything
        defer { client.shutdown() }
        let deadline = Date().addingTimeInterval(5)
        while named().subtracting(before).count < 2, Date() < deadline { usleep(10_000) }
        XCTAssertEqual(named().subtracting(before).count, 2)
    }

    /// A stub that answers every request with 200, and a client for it.
    private func answeringClient(drivers: Int) throws -> (StubServer, S3Client) {
        let stub = StubServer()
        let url = try stub.start(recording: false) { _ in (200, [], "answer") }
        return (stub, try client(for: url, drivers: drivers))
    }

    /// A send made in a completion goes to the driver that ran the completion, which starts it on its next pass with
    /// no wake-up; the first send, from another thread, goes round-robin.
    func testSendsFromACompletionStayOnItsDriver() throws {
        let (stub, client) = try answeringClient(drivers: 2)
        defer { client.shutdown(); stub.stop() }
        let drivers = Recorder<Int?>()
        let done = DispatchSemaphore(value: 0)
        @Sendable func chain(_ i: Int) {
            client.send(.getObject(bucket: "bucket-a", key: "k\(i)")) { result in
                guard case .success = result else { return XCTFail("request \(i) failed") }
                drivers.append(client.transports.firstIndex { $0.isCurrentDriver })
                if i < 30 { chain(i + 1) } else { done.signal() }
            }
        }
        chain(0)
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        let seen = drivers.values
        XCTAssertEqual(seen.count, 31)
        XCTAssertFalse(seen.contains(nil), "every completion runs on a driver thread")
        XCTAssertEqual(Set(seen).count, 1, "all on one driver: \(seen)")
    }

    /// A burst sent from one driver's completion spreads over both drivers: a driver keeps sends only while it holds
    /// no more than `S3Client.driverSlack` more than the other, so one thread does not end up with all the work.
    func testABurstFromOneDriverIsSharedWithTheOther() throws {
        let (stub, client) = try answeringClient(drivers: 2)
        defer { client.shutdown(); stub.stop() }
        let drivers = Recorder<Int?>()
        let done = DispatchSemaphore(value: 0)
        let burst = 100
        client.send(.getObject(bucket: "bucket-a", key: "first")) { _ in
            for i in 0..<burst {
                client.send(.getObject(bucket: "bucket-a", key: "k\(i)")) { result in
                    if case .failure = result { XCTFail("request \(i) failed") }
                    if drivers.append(client.transports.firstIndex { $0.isCurrentDriver }) == burst { done.signal() }
                }
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        let seen = drivers.values
        for d in [0, 1] {
            XCTAssertGreaterThanOrEqual(seen.filter { $0 == d }.count, burst / 2 - S3Client.driverSlack, "driver \(d): \(seen)")
        }
    }

    /// `afterCompletions` runs on the driver thread once a pass's completions have all run: the run after the last
    /// completion sees every one of them.
    func testTheRoundHandlerRunsOnTheDriverAfterThePassesCompletions() throws {
        let (stub, client) = try answeringClient(drivers: 1)
        defer { client.shutdown(); stub.stop() }
        let completed = LockedCounter()
        let seenByHandler = Recorder<Int>()
        let offDriver = LockedCounter()
        let all = 40
        let lastSeen = DispatchSemaphore(value: 0)
        client.afterCompletions {
            if !client.transport.isCurrentDriver { _ = offDriver.next() }
            let n = completed.current
            seenByHandler.append(n)
            if n == all { lastSeen.signal() }
        }
        for i in 0..<all {
            client.send(.getObject(bucket: "bucket-a", key: "k\(i)")) { _ in _ = completed.next() }
        }
        XCTAssertEqual(lastSeen.wait(timeout: .now() + 20), .success, "a handler run saw all \(all) completions")
        XCTAssertEqual(offDriver.current, 0, "the handler ran off the driver thread")
        XCTAssertLessThanOrEqual(seenByHandler.values.count, all, "at most one run per pass with completions")
        client.afterCompletions(nil)
    }

    /// The server drops idle connections without a word (an idle timeout): a parked socket turns readable at EOF.
    /// The next request must go out on a new connection.
    func testIdleConnectionsDroppedByTheServerAreReplaced() async throws {
        let stub = StubServer()
        stub.closeIdleConnectionsAfterMilliseconds = 20
        let counter = LockedCounter()
        let url = try stub.start { _ in (200, [], "answer \(counter.next())") }
        defer { stub.stop() }
        let client = try client(for: url)
        defer { client.shutdown() }
        for i in 0..<10 {
            // Four at once, so several connections are idle when the server drops them.
            let results = await withTaskGroup(of: Bool.self) { group in
                for j in 0..<4 { group.addTask { if case .success = await TransportTests.get(client, i * 4 + j) { return true } else { return false } } }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            XCTAssertEqual(results, [true, true, true, true], "round \(i)")
            try await Task.sleep(nanoseconds: 60_000_000)
        }
        XCTAssertEqual(stub.requests.count, 40)
    }
}

private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.withLock { defer { value += 1 }; return value } }
    var current: Int { lock.withLock { value } }
}

/// Values appended from any thread.
private final class Recorder<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Value] = []
    /// Appends `value`; returns how many there are now.
    @discardableResult
    func append(_ value: Value) -> Int { lock.withLock { list.append(value); return list.count } }
    var values: [Value] { lock.withLock { list } }
}
