# int8 dot product with fixed-point requantization (the shape of a quantized
# matmul/conv kernel, one output):
#
#   acc = sum_i a[i] * b[i]                      exact in 64 bits
#   y   = sat8(round(acc * 0.3))                 the requantized int8 output
#
# The real multiplier 0.3 is the Q63 constant M = round(0.3 * 2^63):
#   mulh(acc << 32, M) = floor(acc * 0.3 * 2^31), then srari 31 rounds to nearest
#   (ties toward +inf, norm:srar-round) and sat 8 clamps to [-128, 127].
# With the vectors below: acc = 83, y = round(24.9) = 25.
# The loop count does not depend on the data (static schedule).

        la    r10, vec_a
        la    r11, vec_b
        li    r12, 8                    # n
        li    r13, 0                    # acc
loop:   lb    r5, 0(r10)                # a[i], sign-extended
        lb    r6, 0(r11)                # b[i]
        mul   r7, r5, r6
        add   r13, r13, r7
        addi  r10, r10, 1
        addi  r11, r11, 1
        addi  r12, r12, -1
        bne   r12, zero, loop

        slli  r14, r13, 32              # keep 32 fraction bits through mulh
        li    r15, 2767011611056432742  # M = round(0.3 * 2^63)
        mulh  r14, r14, r15             # floor(acc * 0.3 * 2^31)
        srari r14, r14, 31              # round(acc * 0.3)
        sat   r14, r14, 8               # clamp to int8
        la    r16, out
        sd    r13, 0(r16)               # out.acc
        sb    r14, 8(r16)               # out.y
        halt

        .align 8
vec_a:  .byte 12, -7, 33, 100, -128, 5, 0, 77
vec_b:  .byte 3, 9, -2, 4, 1, -50, 8, 2
out:    .dword 0                        # acc (int64)
        .dword 0                        # y (int8 in the low byte)
