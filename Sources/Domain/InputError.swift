/// Marks errors caused by what the user supplied (arguments, manifests, configuration). The command line exits
/// with status 2 for these and 1 for everything else (PRODUCT.md §1).
public protocol InputError: Error, CustomStringConvertible {}

extension InvalidInput: InputError {}
