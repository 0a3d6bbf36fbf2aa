import Foundation
import ReencryptdCLI

// The one place the program starts: parse, run, exit with PRODUCT.md §1's status.
let status = await Reencryptd.main(arguments: Array(CommandLine.arguments.dropFirst()))
exit(status)
