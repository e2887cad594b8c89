# Sum an array of int64 (wrapping, norm:add-wrap) and store the total.
# With the array below: total = 55 - 100 + 1000000000000 = 999999999955.

        la    r10, array
        li    r11, 12                   # element count
        li    r12, 0                    # total
loop:   ld    r5, 0(r10)
        add   r12, r12, r5
        addi  r10, r10, 8
        addi  r11, r11, -1
        bne   r11, zero, loop
        la    r6, total
        sd    r12, 0(r6)
        halt

        .align 8
array:  .dword 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        .dword -100, 1000000000000
total:  .dword 0
