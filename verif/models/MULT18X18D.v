// Simulation-only model of the Lattice ECP5 MULT18X18D DSP multiplier, for Verilator.
//
// Covers what dwfuse instantiates (hdl/multiplier.py, dsp="ecp5"): P = A * B, each operand
// signed when its SIGNEDx pin is high, with the optional input A/B, pipeline and output
// registers each on CLK0/CE0/RST0 (synchronous reset, RESETMODE "SYNC"). Cascade (SRI/SRO, RO),
// the C input, SOURCEx shifting and the other clock/enable/reset selections are not modelled:
// instantiating them stops the simulation. Port and parameter names follow Lattice's
// primitive (FPGA-TN-02205 / yosys cells_bb_ecp5.v); A/B/P are single-bit ports there too.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0", parameter REG_INPUTA_RST = "RST0",
    parameter REG_INPUTB_CLK = "NONE", parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_INPUTC_CE = "CE0", parameter REG_INPUTC_RST = "RST0",
    parameter REG_PIPELINE_CLK = "NONE", parameter REG_PIPELINE_CE = "CE0", parameter REG_PIPELINE_RST = "RST0",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0", parameter REG_OUTPUT_RST = "RST0",
    parameter CLK0_DIV = "ENABLED", parameter CLK1_DIV = "ENABLED", parameter CLK2_DIV = "ENABLED",
    parameter CLK3_DIV = "ENABLED", parameter HIGHSPEED_CLK = "NONE", parameter GSR = "ENABLED",
    parameter CAS_MATCH_REG = "FALSE", parameter SOURCEB_MODE = "B_SHIFT", parameter MULT_BYPASS = "DISABLED",
    parameter RESETMODE = "SYNC"
) (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CE0, RST0,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35
);
    localparam IN_A = REG_INPUTA_CLK != "NONE";
    localparam IN_B = REG_INPUTB_CLK != "NONE";
    localparam PIPE = REG_PIPELINE_CLK != "NONE";
    localparam OUT = REG_OUTPUT_CLK != "NONE";

    initial begin
        if ((IN_A && (REG_INPUTA_CLK != "CLK0" || REG_INPUTA_CE != "CE0" || REG_INPUTA_RST != "RST0"))
            || (IN_B && (REG_INPUTB_CLK != "CLK0" || REG_INPUTB_CE != "CE0" || REG_INPUTB_RST != "RST0"))
            || (PIPE && (REG_PIPELINE_CLK != "CLK0" || REG_PIPELINE_CE != "CE0" || REG_PIPELINE_RST != "RST0"))
            || (OUT && (REG_OUTPUT_CLK != "CLK0" || REG_OUTPUT_CE != "CE0" || REG_OUTPUT_RST != "RST0")))
            $fatal(1, "MULT18X18D model: only registers on CLK0/CE0/RST0 are modelled");
        if (RESETMODE != "SYNC") $fatal(1, "MULT18X18D model: only RESETMODE SYNC is modelled");
        if (MULT_BYPASS != "DISABLED") $fatal(1, "MULT18X18D model: MULT_BYPASS is not modelled");
        if (REG_INPUTC_CLK != "NONE") $fatal(1, "MULT18X18D model: the C input is not modelled");
    end

    wire [17:0] a_in = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b_in = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    // Input registers (the sign-control pins are registered along with their operand).
    reg [18:0] a_q = 19'd0, b_q = 19'd0;
    always @(posedge CLK0) if (RST0) begin a_q <= 19'd0; b_q <= 19'd0; end
                            else if (CE0) begin a_q <= {SIGNEDA, a_in}; b_q <= {SIGNEDB, b_in}; end
    wire [18:0] a_s = IN_A ? a_q : {SIGNEDA, a_in};
    wire [18:0] b_s = IN_B ? b_q : {SIGNEDB, b_in};

    // The product of two 19-bit two's-complement values (sign bit only if SIGNEDx).
    wire signed [18:0] a_v = {a_s[18] & a_s[17], a_s[17:0]};
    wire signed [18:0] b_v = {b_s[18] & b_s[17], b_s[17:0]};
    wire signed [37:0] full = a_v * b_v;
    wire [35:0] prod = full[35:0];

    reg [35:0] pipe_q = 36'd0, out_q = 36'd0;
    wire [35:0] pipe_s = PIPE ? pipe_q : prod;
    always @(posedge CLK0) if (RST0) pipe_q <= 36'd0; else if (CE0) pipe_q <= prod;
    always @(posedge CLK0) if (RST0) out_q <= 36'd0; else if (CE0) out_q <= pipe_s;
    wire [35:0] p = OUT ? out_q : pipe_s;

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
            P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
