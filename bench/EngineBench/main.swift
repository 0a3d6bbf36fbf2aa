import Domain
import Engine
import Foundation
import JobStore
import Logging
import S3

// Engine benchmark harness (scripts/engine-instructions.sh): runs the engine in-process on a job store until nothing
// is runnable, from the main thread and without dispatchMain, so that valgrind can follow it. valgrind 3.19 dies in
// libdispatch's signal thread under `reencryptd run`, which waits in dispatchMain for SIGTERM. Prints the stop reason
// and the time; asserts nothing. Usage:
//   engine-bench ENDPOINT STORE [CONCURRENCY]
// The per-bucket ceiling is lifted to 20,000/s, as in `make bench` (a).

let args = CommandLine.arguments
guard args.count == 3 || args.count == 4, let concurrency = args.count == 4 ? Int(args[3]) : 256 else {
    FileHandle.standardError.write(Data("usage: engine-bench ENDPOINT STORE [CONCURRENCY]\n".utf8))
    exit(2)
}
let store = try SQLiteJobStore(path: args[2], cacheMegabytes: SQLiteJobStore.daemonCacheMegabytes)  // as `reencryptd run` opens it
var transport = TransportConfiguration()
transport.maxHostConnections = concurrency
let client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: args[1]), transport: transport),
                          credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDSIMULATOR",
                                                                               secretAccessKey: "simulator/secret+key")))
var configuration = EngineConfiguration()
configuration.untilIdle = true
configuration.concurrency = concurrency
configuration.maxRPSPerBucket = 20_000
var logger = Logger(label: "engine-bench")
logger.logLevel = .critical
let start = Date()
let stop = Engine(store: store, client: client, configuration: configuration, logger: logger).run()
print(String(format: "stopped: %@ after %.2f s", "\(stop)", Date().timeIntervalSince(start)))
client.shutdown()
