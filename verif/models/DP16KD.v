// Simulation-only model of the Lattice ECP5 DP16KD block RAM, for Verilator.
//
// Covers what dwfuse instantiates (hdl/block_ram.py, primitive="ecp5"): port A writes, port B
// reads, both ports the same width, one of
//   36 bits x 512 (pseudo-dual-port: write data on DIA (bits 0-17) and DIB (18-35), read data
//                  on DOA (0-17) and DOB (18-35); ADA0-3 are the 9-bit byte-write enables),
//   18 bits x 1024 (ADA0-1 byte-write enables; read data on DOB),
//    9 bits x 2048 (read data on DOB),
// with the word address on the top address pins (AD[13:5], [13:4], [13:3]). The read port
// latches the addressed word on CLKB when CEB is high; with REGMODE_B "OUTREG" an output
// register then loads that word when OCEB is high (in the 36-bit mode REGMODE_A must match, and
// OCEB enables both halves). A write and a read of the same address on one edge read the old
// word. Contents and registers start at zero. Not modelled, and stopping the simulation when
// used: port-A reads, port-B writes, resets, chip selects other than 0, mixed widths.
// Port and parameter names follow Lattice's primitive (FPGA-TN-02204 / yosys cells_bb_ecp5.v).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED"
) (
    input DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17,
    input ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA0, CSA1, CSA2,
    output DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17,
    input DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17,
    input ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB0, CSB1, CSB2,
    output DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17
);
    localparam W = DATA_WIDTH_A;
    localparam SHIFT = W == 36 ? 5 : W == 18 ? 4 : 3;
    localparam DEPTH = 16384 >> SHIFT;   // 512, 1024, 2048 words
    localparam OUTREG = REGMODE_B == "OUTREG";

    initial begin
        if (W != 36 && W != 18 && W != 9) $fatal(1, "DP16KD model: only widths 36, 18 and 9 are modelled");
        if (DATA_WIDTH_B != W) $fatal(1, "DP16KD model: both ports must have the same width");
        if (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") $fatal(1, "DP16KD model: bad REGMODE_B");
        if (W == 36 && REGMODE_A != REGMODE_B) $fatal(1, "DP16KD model: 36 bits needs REGMODE_A == REGMODE_B");
        if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000") $fatal(1, "DP16KD model: only CSDECODE 0b000");
    end

    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [35:0] di = {dib, dia};
    wire [3:0] byte_en = W == 36 ? ada[3:0] : W == 18 ? {2'b00, ada[1:0]} : 4'b0001;
    wire [13-SHIFT:0] wa = ada[13:SHIFT];
    wire [13-SHIFT:0] ra = adb[13:SHIFT];

    reg [35:0] mem [0:DEPTH-1];
    integer i;
    initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = 36'd0;

    always @(posedge CLKA) begin
        if ({CSA2, CSA1, CSA0} != 3'b000 || RSTA) $fatal(1, "DP16KD model: port A chip select / reset not modelled");
        if (CEA && WEA)
            for (i = 0; i < 4; i = i + 1)
                if (byte_en[i] && 9 * i < W) mem[wa][9 * i +: 9] <= di[9 * i +: 9];
    end

    reg [35:0] latch = 36'd0, out_q = 36'd0;
    always @(posedge CLKB) begin
        if ({CSB2, CSB1, CSB0} != 3'b000 || RSTB || (CEB && WEB))
            $fatal(1, "DP16KD model: port B writes, chip select and reset are not modelled");
        if (CEB) latch <= mem[ra];
        if (OCEB) out_q <= latch;
    end
    wire [35:0] q = OUTREG ? out_q : latch;
    wire [35:0] mask = W == 36 ? {36{1'b1}} : W == 18 ? 36'h3ffff : 36'h1ff;
    wire [35:0] qm = q & mask;
    wire [17:0] doa = W == 36 ? qm[17:0] : 18'd0;
    wire [17:0] dob = W == 36 ? qm[35:18] : qm[17:0];

    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
