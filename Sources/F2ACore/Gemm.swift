import COpenBLAS

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C,
/// with op(A) of shape [m, k] and op(B) of shape [k, n]. Leading dimensions
/// are in elements. Thin wrapper so that every layer states its GEMM the
/// same way and the BLAS dependency stays in one file.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false,
                  m: Int, n: Int, k: Int,
                  alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0,
                  c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched when k == 0 only for beta == 1; make it explicit.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    _ = BLASKernels.choice  // settled (once, thread-safely) before this process's first GEMM
    let call = {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    // Under an address-space limit one OpenBLAS buffer serves every caller (BLASAddressSpace).
    if BLASAddressSpace.isLimited { BLASAddressSpace.gemmLock.withLock { _ in call() } } else { call() }
}

/// Number of threads OpenBLAS uses for one GEMM. Stays 1 under an address-space limit:
/// each OpenBLAS thread maps a 128 MB buffer, and one that cannot map it spins forever
/// (BLASAddressSpace).
public var blasThreadCount: Int {
    get { Int(openblas_get_num_threads()) }
    set { openblas_set_num_threads(BLASAddressSpace.isLimited ? 1 : Int32(max(1, newValue))) }
}
