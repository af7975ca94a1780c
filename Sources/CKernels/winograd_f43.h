#ifndef F2A_WINOGRAD_F43_H
#define F2A_WINOGRAD_F43_H

/* Lavin's F(4x4, 3x3), interpolation points 0, +-1, +-2, infinity: the one
 * definition of its weight transform G, shared by the forward kernel's weight
 * pack (winograd.c: U = G g G^T) and the Winograd-domain weight gradient
 * (weight_grad_winograd.c: dW = G^T dU G). Its input transform B^T and output
 * transform A^T are written out as code where they are applied. */
static const double f2a_winograd_g[6][3] = {
    { 1.0 / 4, 0, 0 },
    { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
    { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
    { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
    { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
    { 0, 0, 1 },
};

#endif
