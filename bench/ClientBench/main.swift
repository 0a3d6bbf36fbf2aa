import Domain
import Foundation
import S3

// Client benchmark (issue 3): the client's own UpdateObjectEncryption requests/s and CPU µs per request against a
// running s3sim. Prints figures; asserts nothing. Usage:
//   client-bench ENDPOINT MANIFEST.csv REQUESTS CONCURRENCY [DRIVERS]
// DRIVERS: transport driver threads (default 1, for the runs pinned to one core; the daemon runs 2).
// The manifest gives the objects (cycled through; repeated updates are idempotent).

let args = CommandLine.arguments
guard args.count == 5 || args.count == 6, let total = Int(args[3]), let concurrency = Int(args[4]),
      let drivers = args.count == 6 ? Int(args[5]) : 1 else {
    FileHandle.standardError.write(Data("usage: client-bench ENDPOINT MANIFEST.csv REQUESTS CONCURRENCY [DRIVERS]\n".utf8))
    exit(2)
}
let arn = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
var objects: [ObjectRef] = []
for line in try String(contentsOfFile: args[2], encoding: .utf8).split(separator: "\n") {
    let f = line.split(separator: ",", omittingEmptySubsequences: false)
    guard f.count >= 2, !f[1].contains("%"), !f[1].contains("+") else { continue }  // plain keys suffice here
    objects.append(ObjectRef(bucket: String(f[0]), key: String(f[1]), versionId: f.count > 2 && !f[2].isEmpty ? String(f[2]) : nil))
}
let requests = objects.map { S3Request.updateObjectEncryption(ObjectRef(bucket: $0.bucket, key: $0.key), kmsKeyARN: arn, bucketKeyEnabled: true) }

var transport = TransportConfiguration()
transport.maxHostConnections = concurrency
transport.drivers = drivers
let client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: args[1]), region: "us-east-1",
                                                                transport: transport),
                          credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDSIMULATOR",
                                                                               secretAccessKey: "simulator/secret+key")))

final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var issued = 0, done = 0, ok = 0, failed = 0
    var firstError: String?
    let finished = DispatchSemaphore(value: 0)
}
let counter = Counter()

@Sendable func issue() {
    let index: Int? = counter.lock.withLock {
        guard counter.issued < total else { return nil }
        counter.issued += 1
        return counter.issued
    }
    guard let index else { return }
    client.send(requests[index % requests.count]) { result in
        let finishedAll = counter.lock.withLock { () -> Bool in
            counter.done += 1
            if case .success = result { counter.ok += 1 } else {
                counter.failed += 1
                if counter.firstError == nil, case .failure(let e) = result { counter.firstError = "\(e)" }
            }
            return counter.done == total
        }
        if finishedAll { counter.finished.signal() } else { issue() }
    }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

let cpu0 = cpuSeconds()
let t0 = Date()
for _ in 0..<min(concurrency, total) { issue() }
counter.finished.wait()
let elapsed = Date().timeIntervalSince(t0)
let cpu = cpuSeconds() - cpu0
client.shutdown()
print(String(format: "requests %d  ok %d  failed %d  elapsed %.2f s  %.0f requests/s  client CPU %.1f µs/request",
             total, counter.ok, counter.failed, elapsed, Double(total) / elapsed, cpu * 1e6 / Double(total)))
if let e = counter.firstError { print("first error: \(e)") }
